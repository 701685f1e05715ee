"""A user model that sleeps for as many seconds as its first input says, then echoes the input."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


class Sleepy:
    def predict(self, X: Any, names: Any, meta: Any = None) -> Any:
        array = np.asarray(X, dtype=float)
        time.sleep(max(float(array.ravel()[0]), 0.0))
        return array
