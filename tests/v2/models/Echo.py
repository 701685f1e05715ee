"""Toy V2 models for tests: each is a Seldon-contract class the runtime serves over V2 as well."""

import numpy as np


class Echo:
    """Returns its input unchanged, so every datatype can be checked end to end."""

    def predict(self, X, names):
        return X


class Pair:
    """Two outputs, for `outputs` selection."""

    def predict(self, X, names):
        return {"same": X, "twice": np.asarray(X) * 2}


class BatchSize:
    """Each row's answer is its own first value and the number of rows in the call it was part of."""

    def predict(self, X, names):
        X = np.asarray(X)
        return np.column_stack([X[:, 0], np.full(len(X), len(X), dtype=X.dtype)])
