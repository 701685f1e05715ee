"""Predictions from the predictor's model, asked for through the mesh's gateway as any client would.

Seldon's explainer calls its predictor's service; here that is the gateway's path of the deployment,
`/seldon/<ns>/<name>/api/v1.0/predictions` (Seldon protocol) or `/seldon/<ns>/<name>/v2/models/<model>/infer`
(V2), with `Seldon-Predictor: <predictor>` so the explainer's predictor answers even in a canary; in a
cluster, the predictor's Service (`--predictor-url`, through the sidecar: Seldon's explainer calls it so).
Large batches (KernelShap asks for thousands of rows at once) are sent in chunks. A model that is down,
slow or refusing is one of our errors (`errors`), which the server answers in the protocol's error shape.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import numpy as np

from explainer_server.errors import ExplainerError, ModelRefused, ModelTimeout, ModelUnavailable
from explainer_server.payloads import encode_v2_tensor, seldon_output, v2_output


@dataclass(frozen=True)
class ModelTarget:
    gateway_url: str  # http://host:port of the gateway
    namespace: str
    deployment: str
    predictor: str
    protocol: str  # "seldon" or "v2"
    model_name: str  # the graph's root node: the V2 model name
    timeout_s: float = 30.0
    chunk_rows: int = 1000
    predictor_url: str | None = None  # the predictor's own address instead (a cluster's Service)

    @property
    def url(self) -> str:
        base = f"{self.gateway_url.rstrip('/')}/seldon/{self.namespace}/{self.deployment}"
        if self.predictor_url:
            base = self.predictor_url.rstrip("/")
        if self.protocol == "v2":
            return f"{base}/v2/models/{self.model_name}/infer"
        return f"{base}/api/v1.0/predictions"


class ModelClient:
    def __init__(self, target: ModelTarget) -> None:
        self.target = target
        self.calls = 0

    def __call__(self, instances: np.ndarray) -> np.ndarray:
        """The model's predictions for `instances` (rows), in the order given."""
        array = np.asarray(instances)
        if array.ndim == 0:
            array = array.reshape(1)
        rows = max(self.target.chunk_rows, 1)
        parts = [self._predict(array[start : start + rows]) for start in range(0, len(array), rows)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _predict(self, array: np.ndarray) -> np.ndarray:
        if self.target.protocol == "v2":
            return v2_output(self._post({"inputs": [encode_v2_tensor("predict", array)]}))
        return seldon_output(self._post({"data": {"ndarray": array.tolist()}}))

    def _post(self, body: dict[str, Any]) -> Any:
        target = self.target
        request = urllib.request.Request(
            target.url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Seldon-Predictor": target.predictor},
        )
        self.calls += 1
        where = f"{target.namespace}/{target.deployment} (predictor {target.predictor})"
        try:
            with urllib.request.urlopen(request, timeout=target.timeout_s) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            text = error.read()[:500].decode(errors="replace")
            if 400 <= error.code < 500 and error.code not in (404, 408, 429):
                raise ModelRefused(
                    f"the model of {where} refused the request ({error.code}): {text}"
                ) from error
            raise ModelUnavailable(f"the model of {where} answered {error.code}: {text}") from error
        except TimeoutError as error:
            raise ModelTimeout(f"the model of {where} did not answer within {target.timeout_s:g}s") from error
        except (urllib.error.URLError, OSError) as error:
            raise ModelUnavailable(f"the model of {where} is unreachable at {target.url}: {error}") from error
        try:
            return json.loads(payload)
        except ValueError as error:
            raise ExplainerError(f"the model of {where} answered something that is not JSON") from error
