"""How the CLI reaches a running `seldon-mesh up`: the control address in the state dir, then plain HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx


class CliError(Exception):
    """A message for the user; the CLI prints it and exits non-zero."""


class ControlClient:
    def __init__(self, state_dir: Path, timeout: float = 300.0) -> None:
        control_file = state_dir / "control.json"
        try:
            record = json.loads(control_file.read_text())
            self.url = str(record["url"])
        except PermissionError as error:
            raise CliError(f"the seldon-mesh with state dir {state_dir} belongs to another user") from error
        except (OSError, ValueError, KeyError) as error:
            raise CliError(
                f"no seldon-mesh is running with state dir {state_dir} (start one with `seldon-mesh up`)"
            ) from error
        headers = {"Authorization": f"Bearer {record['token']}"} if record.get("token") else {}
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.ConnectError as error:
            raise CliError(
                f"seldon-mesh at {self.url} does not answer; is `seldon-mesh up` still running?"
            ) from error

    def apply(self, documents: str, source: str, base_dir: Path) -> httpx.Response:
        body = {"documents": documents, "source": source, "base_dir": str(base_dir)}
        return self.request("POST", "/v1/apply", json=body)

    def deployments(self, namespace: str | None = None) -> list[dict[str, Any]]:
        params = {"namespace": namespace} if namespace else {}
        response = self.request("GET", "/v1/deployments", params=params)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def delete(self, namespace: str, name: str) -> bool:
        response = self.request("DELETE", f"/v1/deployments/{namespace}/{name}")
        return response.status_code == 200

    def info(self) -> dict[str, Any]:
        response = self.request("GET", "/v1/info")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def scrape_endpoints(self) -> list[dict[str, Any]]:
        response = self.request("GET", "/v1/metrics")
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result
