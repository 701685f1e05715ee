"""XGBOOST_SERVER: an XGBoost booster from `model.json` (preferred), else `model.bst` (or `model.ubj`).

As in Seldon, `predict` returns `Booster.predict(DMatrix(X))`: class probabilities for `multi:softprob`
models, values for regressors. Needs the `seldon-mesh[xgboost]` extra.
"""

from __future__ import annotations

from typing import Any

from model_runtime.errors import BadRequest
from model_runtime.runtimes.common import load_failure, locate

MODEL_FILES = ("model.json", "model.bst", "model.ubj")


class XGBoostServer:
    v2_output_name = "predict"

    def __init__(self, model_uri: str = "", model_cache_dir: str = "") -> None:
        self.model_uri = model_uri
        self.cache_dir = model_cache_dir
        self._booster: Any = None

    def load(self) -> None:
        path = locate(self.model_uri, self.cache_dir, MODEL_FILES)
        import xgboost

        self._xgb = xgboost
        try:
            booster = xgboost.Booster()
            booster.load_model(str(path))
        except Exception as exc:
            raise load_failure(path, exc) from exc
        self._booster = booster

    def predict(self, X: Any, names: list[str]) -> Any:
        try:
            return self._booster.predict(self._xgb.DMatrix(X))
        except (ValueError, TypeError, self._xgb.core.XGBoostError) as exc:
            raise BadRequest(f"XGBoost cannot predict on this input: {exc}") from exc

    def init_metadata(self) -> dict[str, Any]:
        return {"platform": "xgboost", "versions": [f"xgboost/{self._xgb.__version__}"]}

    def tensor_metadata(self) -> dict[str, Any]:
        features = int(self._booster.num_features())
        return {
            "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, features]}],
            "outputs": [{"name": "predict", "datatype": "FP32", "shape": [-1, -1]}],
        }
