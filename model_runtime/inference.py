"""The Open Inference Protocol (V2) core: health, metadata, infer and the repository extension.

It serves the same component as the Seldon v1 core (`dataplane.DataPlane`), so one model answers both
protocols with the same numbers. The model's name is the graph node name. Like `DataPlane`, everything
here is synchronous and transport-neutral: `rest.v2` and `rpc.v2` only translate.

How a component is called: one with `infer_tensors(inputs, parameters)` gets the request's tensors, their
parameters (content types) too, and returns output tensors (Hugging Face); one with
`predict_tensors(inputs, parameters)` gets the named input arrays and returns named outputs (ONNX,
MLflow); any other gets Seldon's `predict(X, names, meta)` (or its
transformer method) with X the single input's array (several inputs are stacked column-wise), and its
result becomes one output named `v2_output_name` (default `output-0`), or several if it returns a dict.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata as package_metadata
from typing import Any

import numpy as np

from model_runtime.component import Component, check_metrics
from model_runtime.dataplane import DataPlane, new_puid
from model_runtime.errors import BadRequest, NotFound, NotImplementedByComponent, UserCodeError
from model_runtime.response import SeldonResponse
from model_runtime.settings import ServiceType
from model_runtime.tensors import BYTES, Array, InferRequest, InferResponse, Tensor, to_output

EXTENSIONS = ("binary_tensor_data", "model_repository")


def _version() -> str:
    try:
        return package_metadata.version("seldon-mesh")
    except package_metadata.PackageNotFoundError:
        return "0"


class InferenceCore:
    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.name = plane.settings.name
        self.version = plane.settings.version
        self._server = {"name": "seldon-mesh", "version": _version(), "extensions": list(EXTENSIONS)}

    # --- health and metadata ---------------------------------------------------------------------------

    def server_ready(self) -> bool:
        return self.plane.state[0] == "READY"

    def model_ready(self, name: str, version: str = "") -> bool:
        self.check_model(name, version)
        return self.server_ready()

    def server_metadata(self) -> dict[str, Any]:
        return self._server

    def model_metadata(self, name: str, version: str = "") -> dict[str, Any]:
        self.check_model(name, version)
        component = self.plane.check_ready()
        seldon = self.plane.metadata()
        tensors = component.tensor_metadata()
        out: dict[str, Any] = {
            "name": self.name,
            "versions": [self.version] if self.version else [],
            "platform": str(seldon.get("platform") or ""),
            "inputs": list(tensors.get("inputs", [])),
            "outputs": list(tensors.get("outputs", [])),
        }
        if tensors.get("parameters"):
            out["parameters"] = tensors["parameters"]
        return out

    def check_model(self, name: str, version: str = "") -> None:
        if name != self.name:
            raise NotFound(f"unknown model {name!r} (this runtime serves {self.name!r})")
        if version and version != self.version:
            known = f"version {self.version!r}" if self.version else "no versions"
            raise NotFound(f"unknown version {version!r} of model {name!r} (it has {known})")

    # --- inference -------------------------------------------------------------------------------------

    def infer(self, request: InferRequest) -> InferResponse:
        self.check_model(request.model_name, request.model_version)
        component = self.plane.check_ready()
        request_id = request.id or new_puid()
        if component.infer_tensors is not None:
            outputs = _tensors(component.infer_tensors(request.inputs, request.parameters))
            self._record(component.metrics())
        elif component.predict_tensors is not None:
            named = {t.name: t.data for t in request.inputs}
            result = component.predict_tensors(named, request.parameters)
            if not isinstance(result, dict):
                raise UserCodeError(f"predict_tensors must return a dict, got {type(result).__name__}")
            outputs = [to_output(str(k), v) for k, v in result.items()]
            self._record(component.metrics())
        else:
            outputs = self._call_seldon(component, request, request_id)
        if request.outputs:
            outputs = _select(outputs, [o.name for o in request.outputs])
        return InferResponse(self.name, self.version, request_id, outputs)

    def _call_seldon(self, component: Component, request: InferRequest, request_id: str) -> list[Tensor]:
        method = self._method(component)
        features, names = stack_inputs(request.inputs)
        meta = {"puid": request_id, "tags": {}, "routing": {}, "requestPath": {}}
        response = SeldonResponse.create(method(features, names, meta))
        self._record(component.metrics() + check_metrics(response.metrics), self._method_tag())
        data = response.data
        if isinstance(data, dict):
            return [to_output(str(k), v) for k, v in data.items()]
        return [to_output(component.v2_output_name, data)]

    def _record(self, metrics: list[dict[str, Any]], method: str = "predict") -> None:
        """Custom metrics of one model call (a merged batch is one call), as the v1 path records them."""
        if metrics:
            self.plane.recorder.record_custom(metrics, method)

    def _method_tag(self) -> str:
        """Seldon's `method` label for what `_method` calls."""
        return {
            ServiceType.TRANSFORMER: "inputtransform",
            ServiceType.OUTPUT_TRANSFORMER: "outputtransform",
        }.get(self.plane.settings.service_type, "predict")

    def _method(self, component: Component) -> Callable[..., Any]:
        service_type = self.plane.settings.service_type
        if service_type == ServiceType.TRANSFORMER:
            return component.transform_input or _identity
        if service_type == ServiceType.OUTPUT_TRANSFORMER:
            return component.transform_output or _identity
        if service_type == ServiceType.MODEL and component.predict is not None:
            return component.predict
        raise NotImplementedByComponent(
            f"this {service_type.value.lower()} has no predict(X, names) to serve the V2 protocol with"
        )

    # --- repository extension --------------------------------------------------------------------------

    def repository_index(self) -> list[dict[str, str]]:
        state, reason = self.plane.state
        return [{"name": self.name, "version": self.version, "state": state, "reason": reason}]

    def load(self, name: str) -> None:
        """(Re)load the model; a failure is raised and stays visible in `/ready` and the index."""
        self.check_model(name)
        if self.plane.state[0] == "READY":
            return
        if not self.plane.load():
            self.plane.check_ready()  # raises the LoadError with the reason

    def unload(self, name: str) -> None:
        self.check_model(name)
        self.plane.unload()


def stack_inputs(inputs: list[Tensor]) -> tuple[Array, list[str]]:
    """One input is passed as it is; several become the columns of one 2-D array, named by input."""
    if len(inputs) == 1:
        return inputs[0].data, []
    if any(t.datatype == BYTES for t in inputs):
        raise BadRequest("several inputs can only be stacked when all are numeric; send one BYTES input")
    rows = {t.data.shape[0] if t.data.ndim else 1 for t in inputs}
    if len(rows) != 1:
        raise BadRequest(f"inputs have different first dimensions {sorted(rows)}; cannot stack them")
    n = rows.pop()
    if n == 0 or any(t.data.size == 0 for t in inputs):  # reshape(0, -1) has no answer: the client's error
        raise BadRequest("inputs with no elements cannot be stacked as columns")
    columns = [t.data.reshape(n, -1) for t in inputs]
    names = [t.name for t in inputs] if all(c.shape[1] == 1 for c in columns) else []
    return np.hstack(columns), names


def _tensors(result: Any) -> list[Tensor]:
    if not isinstance(result, list) or not all(isinstance(t, Tensor) for t in result):
        raise UserCodeError(f"infer_tensors must return a list of Tensor, got {type(result).__name__}")
    return result


def _select(outputs: list[Tensor], wanted: list[str]) -> list[Tensor]:
    by_name = {t.name: t for t in outputs}
    missing = [name for name in wanted if name not in by_name]
    if missing:
        raise BadRequest(f"unknown output(s) {missing}; this model has {sorted(by_name)}")
    return [by_name[name] for name in wanted]


def _identity(x: Any, names: list[str], meta: dict[str, Any]) -> Any:
    return x
