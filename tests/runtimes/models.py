"""Real model files for every prepackaged runtime, trained on iris (scikit-learn's bundled data set).

Each builder writes into `folder` what the runtime's `--model-uri` points at and returns the features the
model expects, so tests can compare the runtime's answer with the library's own in-process answer.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

Array = np.ndarray


def iris() -> tuple[Array, Array]:
    features, labels = load_iris(return_X_y=True)
    return features.astype(np.float64), labels


def sklearn_model(folder: Path) -> None:
    features, labels = iris()
    joblib.dump(LogisticRegression(max_iter=1000).fit(features, labels), folder / "model.joblib")


def xgboost_model(folder: Path, filename: str = "model.json") -> None:
    import xgboost

    features, labels = iris()
    train = xgboost.DMatrix(features, label=labels)
    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "nthread": 1}
    booster = xgboost.train(params, train, num_boost_round=5)
    with warnings.catch_warnings():  # .bst: xgboost notes that it picks UBJSON for an unknown extension
        warnings.simplefilter("ignore", UserWarning)
        booster.save_model(str(folder / filename))


def lightgbm_model(folder: Path) -> None:
    import lightgbm

    features, labels = iris()
    params = {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1}
    booster = lightgbm.train(params, lightgbm.Dataset(features, label=labels), num_boost_round=5)
    booster.save_model(str(folder / "model.txt"))


def onnx_model(folder: Path) -> None:
    from skl2onnx import to_onnx

    features, labels = iris()
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    onnx = to_onnx(model, features[:1].astype(np.float32), options={"zipmap": False}, target_opset=17)
    (folder / "model.onnx").write_bytes(onnx.SerializeToString())


MLFLOW_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def mlflow_model(folder: Path) -> Path:
    """An MLflow sklearn model with a column signature; returns the model folder (holding MLmodel)."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature

    features, labels = iris()
    frame = pd.DataFrame(features, columns=MLFLOW_COLUMNS)
    model = LogisticRegression(max_iter=1000).fit(frame, labels)
    target = folder / "mlflow-model"
    signature = infer_signature(frame, model.predict(frame))
    mlflow.sklearn.save_model(model, str(target), signature=signature, serialization_format="cloudpickle")
    return target
