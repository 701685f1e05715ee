"""ONNX_SERVER: an ONNX model (`model.onnx`) run by onnxruntime on the CPU.

V2 requests feed the model's inputs by name (one request input to a one-input model is fed whatever its
name) and get every model output back, named as in the graph. Seldon v1 `predict(X)` feeds X to the
first input and returns the output named by the `output` parameter (default: the first output).
Inputs are cast to the dtype the graph declares. Needs the `seldon-mesh[onnx]` extra.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from model_runtime.errors import BadParameter, BadRequest
from model_runtime.runtimes.common import load_failure, locate

MODEL_FILES = ("model.onnx",)

# onnxruntime type strings -> (numpy dtype, V2 datatype)
_TYPES: dict[str, tuple[str, str]] = {
    "tensor(float)": ("float32", "FP32"),
    "tensor(double)": ("float64", "FP64"),
    "tensor(float16)": ("float16", "FP16"),
    "tensor(int8)": ("int8", "INT8"),
    "tensor(int16)": ("int16", "INT16"),
    "tensor(int32)": ("int32", "INT32"),
    "tensor(int64)": ("int64", "INT64"),
    "tensor(uint8)": ("uint8", "UINT8"),
    "tensor(uint16)": ("uint16", "UINT16"),
    "tensor(uint32)": ("uint32", "UINT32"),
    "tensor(uint64)": ("uint64", "UINT64"),
    "tensor(bool)": ("bool", "BOOL"),
    "tensor(string)": ("object", "BYTES"),
}


class ONNXServer:
    def __init__(self, model_uri: str = "", model_cache_dir: str = "", output: str = "") -> None:
        self.model_uri = model_uri
        self.cache_dir = model_cache_dir
        self.output = output
        self._session: Any = None

    def load(self) -> None:
        path = locate(self.model_uri, self.cache_dir, MODEL_FILES)
        import onnxruntime

        self._ort = onnxruntime
        try:
            self._session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise load_failure(path, exc) from exc
        self._inputs = {i.name: i.type for i in self._session.get_inputs()}
        self._input_names = list(self._inputs)
        self._output_names = [o.name for o in self._session.get_outputs()]
        if self.output and self.output not in self._output_names:
            raise BadParameter(f"output {self.output!r} is not one of the model's {self._output_names}")
        self.v2_output_name = self.output or self._output_names[0]

    def predict(self, X: Any, names: list[str]) -> Any:
        wanted = self.output or self._output_names[0]
        return self._run({self._input_names[0]: X}, [wanted])[wanted]

    def predict_tensors(self, inputs: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
        if len(inputs) == 1 and len(self._input_names) == 1:
            inputs = {self._input_names[0]: next(iter(inputs.values()))}
        return self._run(inputs, self._output_names)

    def _run(self, inputs: dict[str, Any], outputs: list[str]) -> dict[str, Any]:
        unknown = sorted(set(inputs) - set(self._inputs))
        missing = sorted(set(self._inputs) - set(inputs))
        if unknown or missing:
            raise BadRequest(f"the model's inputs are {self._input_names}; got {sorted(inputs)}")
        feed = {name: self._cast(name, value) for name, value in inputs.items()}
        try:
            results = self._session.run(outputs, feed)
        except (self._ort.capi.onnxruntime_pybind11_state.Fail, ValueError, TypeError) as exc:
            raise BadRequest(f"onnxruntime cannot run this input: {exc}") from exc
        except self._ort.capi.onnxruntime_pybind11_state.InvalidArgument as exc:
            raise BadRequest(f"onnxruntime rejected this input: {exc}") from exc
        return dict(zip(outputs, results, strict=True))

    def _cast(self, name: str, value: Any) -> Any:
        dtype, datatype = _TYPES.get(self._inputs[name], ("", ""))
        array = np.asarray(value)
        if not dtype or array.dtype == dtype:
            return array
        if datatype == "BYTES" or array.dtype.kind in "OSU":
            raise BadRequest(f"input {name!r} must be {datatype or self._inputs[name]}, got {array.dtype}")
        return array.astype(dtype)

    def init_metadata(self) -> dict[str, Any]:
        return {"platform": "onnx", "versions": [f"onnxruntime/{self._ort.__version__}"]}

    def tensor_metadata(self) -> dict[str, Any]:
        def describe(node: Any) -> dict[str, Any]:
            shape = [d if isinstance(d, int) else -1 for d in (node.shape or [])]
            return {"name": node.name, "datatype": _TYPES.get(node.type, ("", "BYTES"))[1], "shape": shape}

        return {
            "inputs": [describe(i) for i in self._session.get_inputs()],
            "outputs": [describe(o) for o in self._session.get_outputs()],
        }
