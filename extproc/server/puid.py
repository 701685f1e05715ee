"""A request id from the client's body (`meta.puid`, V2 `id`) becomes the `Seldon-Puid` header of every node
call and of the answer, so it is checked here, where it enters: a value a header cannot carry (a newline,
another control character, non-ASCII) is the client's error, answered 400 in its protocol's shape, instead
of a node closing the connection on it (that was a 503 "cannot reach node")."""

from __future__ import annotations

import re
from typing import Any

from extproc.graph.errors import bad_request

_HEADER_SAFE = re.compile(r"[\x20-\x7e]*")
MAX_PUID_CHARS = 1024  # a UUID is 36; Envoy's whole header block is 60 KiB by default


def checked_puid(value: Any, field: str) -> str:
    puid = str(value)
    if len(puid) > MAX_PUID_CHARS:
        raise bad_request(f"{field} is longer than {MAX_PUID_CHARS} characters")
    if not _HEADER_SAFE.fullmatch(puid):
        raise bad_request(f"{field} may hold printable ASCII only (it is sent as the Seldon-Puid header)")
    return puid.strip()


def check_feedback_puids(feedback: Any) -> None:
    """The puids inside a feedback's request and response messages reach the nodes too."""
    if not isinstance(feedback, dict):
        return
    for part in ("request", "response"):
        message = feedback.get(part)
        meta = message.get("meta") if isinstance(message, dict) else None
        if isinstance(meta, dict) and meta.get("puid"):
            checked_puid(meta["puid"], f"{part}.meta.puid")
