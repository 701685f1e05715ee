"""`SeldonMicroserviceException`: what user code raises to answer with its own HTTP status and reason.

The runtime reads `status_code` (default 400) and `reason` (default MICROSERVICE_BAD_DATA) from the
exception and answers REST with that status and Seldon's error body, gRPC with the matching status code.
No Flask is needed (Seldon's module of this name also holds its Flask helpers, which this one does not).
"""

from __future__ import annotations

from typing import Any


class SeldonMicroserviceException(Exception):
    status_code = 400

    def __init__(
        self,
        message: str,
        status_code: int | None = None,
        payload: dict[str, Any] | None = None,
        reason: str = "MICROSERVICE_BAD_DATA",
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.payload = payload
        self.reason = reason

    def to_dict(self) -> dict[str, Any]:
        """The error body of Seldon's Python wrapper."""
        body: dict[str, Any] = dict(self.payload or {})
        body["status"] = {"status": 1, "info": self.message, "code": -1, "reason": self.reason}
        return body
