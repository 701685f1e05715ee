"""LIGHTGBM_SERVER: a LightGBM booster from `model.txt` (LightGBM's own format), else `model.bst`.

`predict` returns `Booster.predict(X)`: class probabilities for multiclass models. Needs the
`seldon-mesh[lightgbm]` extra.
"""

from __future__ import annotations

from typing import Any

from model_runtime.errors import BadRequest
from model_runtime.runtimes.common import load_failure, locate

MODEL_FILES = ("model.txt", "model.bst")


class LightGBMServer:
    v2_output_name = "predict"

    def __init__(self, model_uri: str = "", model_cache_dir: str = "") -> None:
        self.model_uri = model_uri
        self.cache_dir = model_cache_dir
        self._booster: Any = None

    def load(self) -> None:
        path = locate(self.model_uri, self.cache_dir, MODEL_FILES)
        import lightgbm

        self._lgb = lightgbm
        try:
            self._booster = lightgbm.Booster(model_file=str(path))
        except Exception as exc:
            raise load_failure(path, exc) from exc

    def predict(self, X: Any, names: list[str]) -> Any:
        try:
            return self._booster.predict(X)
        except (ValueError, TypeError, self._lgb.basic.LightGBMError) as exc:
            raise BadRequest(f"LightGBM cannot predict on this input: {exc}") from exc

    def init_metadata(self) -> dict[str, Any]:
        return {"platform": "lightgbm", "versions": [f"lightgbm/{self._lgb.__version__}"]}

    def tensor_metadata(self) -> dict[str, Any]:
        features = int(self._booster.num_feature())
        return {
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, features]}],
            "outputs": [{"name": "predict", "datatype": "FP64", "shape": [-1, -1]}],
        }
