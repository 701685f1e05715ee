"""A user model that fails on inputs containing a negative number, and doubles the others."""

from __future__ import annotations

from typing import Any

import numpy as np


class Failing:
    def predict(self, X: Any, names: Any, meta: Any = None) -> Any:
        array = np.asarray(X, dtype=float)
        if (array < 0).any():
            raise ValueError("negative inputs are not allowed")
        return array * 2
