"""Prepackaged runtimes, by their SeldonDeployment `implementation` name.

Each is a plain class with Seldon's method contract (plus the V2 extras `tensor_metadata` and, where
inputs are named, `predict_tensors`). Heavy libraries are imported in `load()`, so the registry costs
nothing and a missing extra is a load failure with the install hint, not an import error at startup.
"""

from collections.abc import Mapping

from model_runtime.runtimes.huggingface import HuggingFaceServer
from model_runtime.runtimes.lightgbm import LightGBMServer
from model_runtime.runtimes.mlflow import MLFlowServer
from model_runtime.runtimes.onnx import ONNXServer
from model_runtime.runtimes.sklearn import SKLearnServer
from model_runtime.runtimes.tensorflow import TensorFlowServer
from model_runtime.runtimes.xgboost import XGBoostServer

IMPLEMENTATIONS: Mapping[str, type] = {
    "SKLEARN_SERVER": SKLearnServer,
    "XGBOOST_SERVER": XGBoostServer,
    "LIGHTGBM_SERVER": LightGBMServer,
    "MLFLOW_SERVER": MLFlowServer,
    "ONNX_SERVER": ONNXServer,
    "TENSORFLOW_SERVER": TensorFlowServer,
    "HUGGINGFACE_SERVER": HuggingFaceServer,
}

__all__ = [
    "IMPLEMENTATIONS",
    "HuggingFaceServer",
    "LightGBMServer",
    "MLFlowServer",
    "ONNXServer",
    "SKLearnServer",
    "TensorFlowServer",
    "XGBoostServer",
]
