"""MLFLOW_SERVER: an MLflow model folder (`MLmodel`) loaded as a pyfunc.

`xtype` picks what `predict` hands the model: `ndarray` (Seldon's default) or `DataFrame`, whose columns
are the request's names, else the signature's input names. The model signature becomes the V2 metadata
(one tensor per column, or the tensor specs). Needs the `seldon-mesh[mlflow]` extra.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from model_runtime.errors import BadParameter, BadRequest, LoadError
from model_runtime.runtimes.common import load_failure
from model_runtime.storage import fetch

XTYPES = ("ndarray", "DataFrame")

# MLflow schema types -> V2 datatypes
_DATATYPES = {
    "boolean": "BOOL",
    "integer": "INT32",
    "long": "INT64",
    "float": "FP32",
    "double": "FP64",
    "string": "BYTES",
    "binary": "BYTES",
}


class MLFlowServer:
    v2_output_name = "predict"

    def __init__(self, model_uri: str = "", xtype: str = "ndarray", model_cache_dir: str = "") -> None:
        if xtype not in XTYPES:
            raise BadParameter(f"xtype must be one of {', '.join(XTYPES)}, got {xtype!r}")
        self.model_uri = model_uri
        self.xtype = xtype
        self.cache_dir = model_cache_dir
        self._model: Any = None

    def load(self) -> None:
        from pathlib import Path

        folder = fetch(self.model_uri, Path(self.cache_dir) if self.cache_dir else None)
        if not (folder / "MLmodel").is_file():
            raise LoadError(f"MLmodel not found in {folder}")
        import mlflow
        import mlflow.pyfunc

        self._mlflow = mlflow
        try:
            self._model = mlflow.pyfunc.load_model(str(folder))
        except Exception as exc:
            raise load_failure(folder, exc) from exc
        self._signature = self._model.metadata.signature

    def predict(self, X: Any, names: list[str]) -> Any:
        data = X
        columns = names or self._column_names()
        if self.xtype == "DataFrame" or (columns and np.ndim(X) == 2 and np.shape(X)[1] == len(columns)):
            import pandas as pd

            array = np.asarray(X)
            if array.ndim == 1:
                array = array.reshape(1, -1)
            data = pd.DataFrame(array, columns=columns or None)
            data = self._cast_columns(data)
        try:
            result = self._model.predict(data)
        except Exception as exc:
            raise BadRequest(
                f"the MLflow model cannot predict on this input: {type(exc).__name__}: {exc}"
            ) from exc
        if hasattr(result, "to_numpy"):
            result = result.to_numpy()
        return result

    def _column_names(self) -> list[str]:
        schema = self._signature.inputs if self._signature else None
        if schema is None or not schema.has_input_names() or schema.is_tensor_spec():
            return []
        return [str(n) for n in schema.input_names()]

    def _cast_columns(self, frame: Any) -> Any:
        """Cast to the signature's column types, so JSON's float64 meets a float32 or int column."""
        schema = self._signature.inputs if self._signature else None
        if schema is None or schema.is_tensor_spec():
            return frame
        types = {c.name: c.type.to_numpy() for c in schema.inputs if c.name in frame.columns}
        try:
            return frame.astype(types)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"input does not fit the model signature: {exc}") from exc

    def init_metadata(self) -> dict[str, Any]:
        return {"platform": "mlflow", "versions": [f"mlflow/{self._mlflow.__version__}"]}

    def tensor_metadata(self) -> dict[str, Any]:
        if self._signature is None:
            return {}
        return {
            "inputs": _tensors(self._signature.inputs),
            "outputs": _tensors(self._signature.outputs),
        }


def _tensors(schema: Any) -> list[dict[str, Any]]:
    if schema is None:
        return []
    out: list[dict[str, Any]] = []
    for index, spec in enumerate(schema.inputs):
        name = spec.name or f"input-{index}"
        if schema.is_tensor_spec():
            from model_runtime.tensors import datatype_of

            datatype = datatype_of(np.empty(0, dtype=spec.type)) or "BYTES"
            out.append({"name": name, "datatype": datatype, "shape": [int(d) for d in spec.shape]})
        else:
            type_name = getattr(spec.type, "name", str(spec.type))
            out.append({"name": name, "datatype": _DATATYPES.get(type_name, "BYTES"), "shape": [-1, 1]})
    return out
