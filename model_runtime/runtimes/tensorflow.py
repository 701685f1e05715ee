"""TENSORFLOW_SERVER: a TensorFlow SavedModel, answering TF Serving's API and Seldon's.

`modelUri` is a TF Serving model base folder (numbered version folders, each a SavedModel; the highest
is served) or a SavedModel folder itself (served as version 1). TensorFlow runs in a worker process on
its own environment (`tensorflow_env`, `tensorflow_worker`); this class is the runtime's side of it.

Under `protocol: tensorflow` clients call TF Serving's REST and gRPC API (`model_runtime.tfserving`),
the model answering under `model_name` (default: the node's name). Under `protocol: seldon` (alone or in
a graph) a Seldon message is translated as Seldon's tfserving proxy does: the request's array is the
`instances` of a predict call on `signature_name` (default `serving_default`), fed to `model_input`
(default: the signature's only input), and the answer is the `model_output` tensor (default: its only
output), sent back in the request's data kind; `jsonData` is passed through as a TF Serving REST predict
body and its JSON answer comes back as `jsonData`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from generated.tensorflow import signature_pb2
from model_runtime.codecs.tf_json import decode_predict_body, decode_predict_inputs, encode_predict_outputs
from model_runtime.errors import BadParameter, BadRequest, LoadError
from model_runtime.runtimes.tensorflow_client import TensorFlowWorker
from model_runtime.runtimes.tensorflow_env import tensorflow_python
from model_runtime.storage import fetch
from model_runtime.tfserving import DEFAULT_SIGNATURE, check_inputs

log = logging.getLogger(__name__)

Array = np.ndarray[Any, Any]
SAVED_MODEL = "saved_model.pb"


class TensorFlowServer:
    def __init__(
        self,
        model_uri: str = "",
        model_cache_dir: str = "",
        model_name: str = "",
        signature_name: str = "",
        model_input: str = "",
        model_output: str = "",
        rest_endpoint: str = "",
        grpc_endpoint: str = "",
        tags: str = "serve",
    ) -> None:
        if rest_endpoint or grpc_endpoint:
            raise BadParameter(
                "rest_endpoint/grpc_endpoint name an external TF Serving, which seldon-mesh does not proxy: "
                "it serves the SavedModel of modelUri itself; drop these parameters"
            )
        self.model_uri = model_uri
        self.cache_dir = model_cache_dir
        self.tf_model_name = model_name
        self.signature_name = signature_name or DEFAULT_SIGNATURE
        self._named_signature = bool(signature_name or model_input or model_output)
        self.model_input = model_input
        self.model_output = model_output
        self.tags = tuple(t.strip() for t in tags.split(",") if t.strip())
        self._worker: TensorFlowWorker | None = None
        self._version = 0

    def load(self) -> None:
        folder = fetch(self.model_uri, Path(self.cache_dir) if self.cache_dir else None)
        path, self._version = saved_model_version(folder)
        worker = TensorFlowWorker(tensorflow_python(), path, self.tags)
        signatures = worker.load()
        if self._named_signature and self.signature_name not in signatures:
            worker.close()
            raise LoadError(f"signature_name {self.signature_name!r} is not one of {sorted(signatures)}")
        self._worker = worker

    # --- TF Serving (`tfserving.TFServingModel`) -----------------------------------------------------

    def tf_version(self) -> int:
        return self._version

    def tf_signatures(self) -> Mapping[str, signature_pb2.SignatureDef]:
        return self._loaded().signatures

    def tf_run(self, signature: str, inputs: dict[str, Array]) -> dict[str, Array]:
        return self._loaded().run(signature, inputs)

    # --- Seldon, as the tfserving proxy translates it ----------------------------------------------

    def predict(self, X: Any, names: list[str]) -> Any:
        if isinstance(X, dict):  # jsonData: a TF Serving REST predict body
            body = decode_predict_body(X)
            definition = self._signature(body.signature_name or self.signature_name)
            inputs = decode_predict_inputs(body, definition)
            outputs = self.tf_run(
                body.signature_name or self.signature_name, check_inputs(definition, inputs)
            )
            return encode_predict_outputs(outputs, body.row)
        definition = self._signature(self.signature_name)
        alias = self.model_input or _only("input", sorted(definition.inputs), "model_input")
        if alias not in definition.inputs:
            raise BadRequest(f"model_input {alias!r} is not an input of {self.signature_name!r}")
        outputs = self.tf_run(self.signature_name, check_inputs(definition, {alias: np.asarray(X)}))
        wanted = self.model_output or _only("output", sorted(outputs), "model_output")
        if wanted not in outputs:
            raise BadRequest(f"model_output {wanted!r} is not an output of {self.signature_name!r}")
        return outputs[wanted]

    def init_metadata(self) -> dict[str, Any]:
        worker = self._loaded()
        return {"platform": "tensorflow", "versions": [f"tensorflow/{worker.tf_version}", str(self._version)]}

    def _signature(self, name: str) -> signature_pb2.SignatureDef:
        signatures = self.tf_signatures()
        if name not in signatures:
            raise BadRequest(f'Serving signature name: "{name}" not found in signature def')
        return signatures[name]

    def _loaded(self) -> TensorFlowWorker:
        if self._worker is None:
            raise LoadError("the SavedModel is not loaded")
        return self._worker


def saved_model_version(folder: Path) -> tuple[Path, int]:
    """The SavedModel to serve in `folder` and its version: the highest numbered version folder holding
    one (TF Serving's layout), or `folder` itself as version 1."""
    if (folder / SAVED_MODEL).is_file():
        return folder, 1
    versions = (
        sorted(
            (int(child.name), child)
            for child in folder.iterdir()
            if child.is_dir() and child.name.isdigit() and (child / SAVED_MODEL).is_file()
        )
        if folder.is_dir()
        else []
    )
    if not versions:
        raise LoadError(f"no SavedModel ({SAVED_MODEL}) in {folder} or in a numbered version folder of it")
    version, path = versions[-1]
    return path, version


def _only(kind: str, names: list[str], parameter: str) -> str:
    if len(names) != 1:
        raise BadRequest(f"the signature has {len(names)} {kind}s ({', '.join(names)}): set {parameter}")
    return names[0]
