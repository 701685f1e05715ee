"""Builders of payload events for the logger tests."""

from __future__ import annotations

import json

from payload_log import EventType, PayloadEvent

REQUEST_BODY = {"data": {"ndarray": [[1.0, 2.0, 3.0, 4.0]]}}
RESPONSE_BODY = {"data": {"names": ["t:0", "t:1"], "ndarray": [[0.1, 0.9]]}, "meta": {"puid": "p"}}


def event(kind: EventType, body: object, puid: str, destination: str | None = None) -> PayloadEvent:
    return PayloadEvent(
        type=kind,
        body=json.dumps(body).encode(),
        content_type="application/json",
        request_id=puid,
        model_id="classifier",
        deployment="iris",
        namespace="seldon",
        predictor="default",
        source="http://gateway.seldon:8000/",
        destination=destination,
    )


def pair(puid: str, destination: str | None = None) -> tuple[PayloadEvent, PayloadEvent]:
    """A node's request and response events for one prediction, as the executor logs them."""
    return (
        event(EventType.REQUEST, REQUEST_BODY, puid, destination),
        event(EventType.RESPONSE, RESPONSE_BODY, puid, destination),
    )
