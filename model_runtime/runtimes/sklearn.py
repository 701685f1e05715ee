"""SKLEARN_SERVER: a scikit-learn estimator from `model.joblib` (or `model.pkl` / `model.pickle`).

A prepackaged runtime is just a user class with the Seldon contract, so it goes through the same
`Component` and dataplane as user code. The `method` parameter picks `predict_proba` (Seldon's default),
`predict` or `decision_function`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from model_runtime.errors import BadParameter, BadRequest, LoadError
from model_runtime.storage import fetch

METHODS = ("predict_proba", "predict", "decision_function")
MODEL_FILES = ("model.joblib", "model.pkl", "model.pickle")


class SKLearnServer:
    def __init__(self, model_uri: str = "", method: str = "predict_proba", model_cache_dir: str = "") -> None:
        if method not in METHODS:
            raise BadParameter(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        self.model_uri = model_uri
        self.method = method
        self.v2_output_name = method
        self.cache_dir = Path(model_cache_dir) if model_cache_dir else None
        self._predict: Any = None
        self._model: Any = None

    def load(self) -> None:
        folder = fetch(self.model_uri, self.cache_dir)
        path = folder if folder.is_file() else _model_file(folder)
        import joblib  # here, so processes serving other runtimes never import it

        try:
            self._model = joblib.load(path)
        except Exception as exc:
            raise LoadError(f"cannot load {path}: {type(exc).__name__}: {exc}") from exc
        self._predict = getattr(self._model, self.method, None)
        if self._predict is None:
            raise LoadError(f"{type(self._model).__name__} from {path} has no method {self.method}")
        self._warm_up()

    def _warm_up(self) -> None:
        """One prediction now, so the first request does not pay scikit-learn's one-off lazy setup."""
        features = getattr(self._model, "n_features_in_", None)
        if features is None or getattr(self._model, "feature_names_in_", None) is not None:
            return
        try:
            self._predict(np.zeros((1, int(features))))
        except Exception:  # a model that cannot take zeros is still served; only the warm-up is skipped
            return

    def predict(self, X: Any, names: list[str]) -> Any:
        try:
            return self._predict(X)
        except (ValueError, TypeError) as exc:  # wrong feature count, non-numeric input, ...
            raise BadRequest(str(exc)) from exc

    def init_metadata(self) -> dict[str, Any]:
        import sklearn

        features = getattr(self._model, "n_features_in_", None)
        feature_names = [str(n) for n in getattr(self._model, "feature_names_in_", [])]
        schema: dict[str, Any] = {"names": feature_names} if feature_names else {}
        if features is not None:
            schema["shape"] = [int(features)]
        outputs: list[dict[str, Any]] = []
        classes = getattr(self._model, "classes_", None)
        if self.method == "predict_proba" and classes is not None:
            outputs.append({"messagetype": "tensor", "schema": {"shape": [len(np.asarray(classes))]}})
        return {
            "platform": "sklearn",
            "versions": [f"sklearn/{sklearn.__version__}"],
            "inputs": [{"messagetype": "tensor", "schema": schema}],
            "outputs": outputs,
            "custom": {"method": self.method, "estimator": type(self._model).__name__},
        }

    def tensor_metadata(self) -> dict[str, Any]:
        features = getattr(self._model, "n_features_in_", None)
        inputs = [{"name": "input-0", "datatype": "FP64", "shape": [-1, int(features) if features else -1]}]
        classes = getattr(self._model, "classes_", None)
        if self.method == "predict":
            outputs = [{"name": "predict", "datatype": _datatype(classes), "shape": [-1]}]
        else:
            width = [-1, len(classes)] if classes is not None and len(classes) > 2 else [-1, -1]
            outputs = [{"name": self.method, "datatype": "FP64", "shape": width}]
        return {"inputs": inputs, "outputs": outputs}


def _datatype(classes: Any) -> str:
    if classes is None:
        return "FP64"
    kind = np.asarray(classes).dtype.kind
    return {"i": "INT64", "u": "UINT64", "b": "BOOL", "f": "FP64"}.get(kind, "BYTES")


def _model_file(folder: Path) -> Path:
    for name in MODEL_FILES:
        if (folder / name).is_file():
            return folder / name
    raise LoadError(f"{' / '.join(MODEL_FILES)} not found in {folder}")
