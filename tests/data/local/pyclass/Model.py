"""A user's Python class model, the way Seldon's Python wrapper takes it: `predict(X, names, meta)`."""

from __future__ import annotations

from typing import Any

import numpy as np


class Model:
    def __init__(self, scale: float = 1.0, label: str = "doubler") -> None:
        self.scale = scale
        self.label = label
        self.loaded = False

    def load(self) -> None:
        self.loaded = True

    def predict(self, X: Any, names: Any, meta: Any = None) -> Any:
        return np.asarray(X, dtype=float) * 2 * self.scale

    def tags(self) -> dict[str, Any]:
        return {"model": self.label, "loaded": self.loaded}
