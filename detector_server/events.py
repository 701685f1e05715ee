"""CloudEvents 1.0 in binary mode, as the payload logger sends them and as the detector replies.

An incoming event's attributes are its `Ce-*` headers; its payload the body. The reply (the detector's
answer, posted to `--reply_url`) keeps the event's id (a new one when it had none), takes the server's
`--event_type` and `--event_source`, and carries the incoming event's extension attributes (`Ce-Modelid`,
`Ce-Requestid`, `Ce-Inferenceservicename`, `Ce-Namespace`, `Ce-Endpoint`, ...), so a consumer can tell which
deployment and request it is about, as Seldon's server does. `RecentIds` remembers the ids already
taken: the logger delivers at least once, and a redelivered event must not count twice. Pure.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

# the core context attributes of CloudEvents 1.0; every other `Ce-*` header is an extension
CORE = frozenset({"id", "source", "type", "specversion", "time", "datacontenttype", "dataschema", "subject"})
REQUEST_TYPE = "io.seldon.serving.inference.request"


def attributes(headers: Mapping[str, str]) -> dict[str, str]:
    """The event's attributes, lower-cased without the `ce-` prefix."""
    return {k[3:].lower(): v for k, v in headers.items() if k.lower().startswith("ce-")}


def reply_headers(incoming: Mapping[str, str], event_type: str, event_source: str) -> dict[str, str]:
    attrs = attributes(incoming)
    headers = {
        "Ce-Id": attrs.get("id") or str(uuid.uuid4()),
        "Ce-Specversion": "1.0",
        "Ce-Source": event_source,
        "Ce-Type": event_type,
        "Ce-Time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "Content-Type": "application/json",
    }
    for name, value in attrs.items():
        if name not in CORE:
            headers["Ce-" + name.capitalize()] = value
    return headers


def accepted_type(headers: Mapping[str, str], types: frozenset[str]) -> bool:
    """Whether the detector takes this event: one of `types` (`*` for any), or a plain POST (no Ce-Type)."""
    event_type = attributes(headers).get("type")
    return event_type is None or "*" in types or event_type in types


class RecentIds:
    """The last `size` event ids taken, oldest forgotten first."""

    def __init__(self, size: int = 100_000) -> None:
        self._size = size
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        while len(self._ids) > self._size:
            self._ids.popitem(last=False)
