"""Prepackaged model servers: which `implementation` names exist and which protocols each speaks.

Validation uses this to reject, say, TRITON_SERVER under the `seldon` protocol; renderers and the local
runtime use it to pick what to run. Seldon's list (reference 1.6) plus seldon-mesh's LightGBM and ONNX.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from mesh.spec.vocabulary import ProtocolName

# `kfserving` is Seldon's older name for the V2 protocol; the two are aliases.
_ALIASES: dict[str, str] = {"kfserving": "v2"}


def canonical_protocol(protocol: str) -> str:
    return _ALIASES.get(protocol, protocol)


@dataclass(frozen=True)
class ServerInfo:
    name: str
    protocols: frozenset[ProtocolName]
    description: str

    def supports(self, protocol: str) -> bool:
        wanted = canonical_protocol(protocol)
        return any(canonical_protocol(p) == wanted for p in self.protocols)


def _server(name: str, protocols: tuple[ProtocolName, ...], description: str) -> tuple[str, ServerInfo]:
    return name, ServerInfo(name, frozenset(protocols), description)


PREPACKAGED_SERVERS: Mapping[str, ServerInfo] = MappingProxyType(
    dict(
        [
            _server("SKLEARN_SERVER", ("seldon", "v2", "kfserving"), "scikit-learn model.joblib"),
            _server("XGBOOST_SERVER", ("seldon", "v2", "kfserving"), "XGBoost model.json or model.bst"),
            _server("MLFLOW_SERVER", ("seldon", "v2", "kfserving"), "MLflow model folder"),
            _server("TENSORFLOW_SERVER", ("seldon", "tensorflow"), "TensorFlow SavedModel"),
            _server("TRITON_SERVER", ("v2", "kfserving"), "Triton model repository"),
            _server("HUGGINGFACE_SERVER", ("v2", "kfserving"), "Hugging Face pipeline"),
            _server("TEMPO_SERVER", ("v2", "kfserving"), "Tempo artefacts"),
            _server("LIGHTGBM_SERVER", ("seldon", "v2", "kfserving"), "LightGBM model.txt (seldon-mesh)"),
            _server("ONNX_SERVER", ("seldon", "v2", "kfserving"), "ONNX model.onnx (seldon-mesh)"),
        ]
    )
)
