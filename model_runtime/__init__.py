"""The seldon-mesh model runtime: serves one Seldon graph node (a prepackaged server such as
SKLEARN_SERVER, XGBOOST_SERVER, LIGHTGBM_SERVER, MLFLOW_SERVER or ONNX_SERVER, or a Python class with
Seldon's method contract) over Seldon v1 and the Open Inference Protocol (V2), each on REST and gRPC, from
one process and port pair. The V2 model name is the graph node name.

User code may import `SeldonResponse` (per-request tags and metrics) and `BadRequest` (a 400 with its
message) from here.
"""

from model_runtime.errors import BadRequest, RuntimeFailure
from model_runtime.response import SeldonResponse

__all__ = ["BadRequest", "RuntimeFailure", "SeldonResponse"]
