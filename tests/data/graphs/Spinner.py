"""A user model that keeps a CPU busy for as many seconds as its first input says, then echoes the input:
a long predict that holds the runtime's event loop (user code runs on it by default) while doing work."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


class Spinner:
    def predict(self, X: Any, names: Any, meta: Any = None) -> Any:
        array = np.asarray(X, dtype=float)
        until = time.monotonic() + max(float(array.ravel()[0]), 0.0)
        spins = 0
        while time.monotonic() < until:
            spins += 1
        return array
