"""HUGGINGFACE_SERVER: a transformers pipeline, served with the V2 protocol as MLServer's Hugging Face
runtime (the image Seldon runs for this server) serves it.

Parameters, as Seldon and MLServer name them: `task` (required: a transformers pipeline task, or an alias
such as `sentiment-analysis`; `translation` takes `task_suffix`, e.g. `_en_to_fr`), `pretrained_model`
(a hub id or a path; it wins over `modelUri`, as in MLServer), `pretrained_tokenizer` (default: the
model), `optimum_model` (run the model on ONNX Runtime through Optimum, exported on load; CPU only),
`device` (-1 or `cpu`, a GPU ordinal, `cuda:1`, ...), `batch_size`, `framework` (`pt`),
`inter_op_threads` and `intra_op_threads` (PyTorch's thread pools) and `model_kwargs` (a JSON object
for `from_pretrained`). Without `pretrained_model` the model is the folder `modelUri` names, fetched by
the storage layer like every runtime's, holding what `save_pretrained` writes (`config.json`, the weights,
the tokenizer's files).

How inputs become the pipeline call and how the answer is encoded: `huggingface_codecs`. Any failure of
the pipeline on a request is the request's fault (a 400 with the pipeline's reason): the model is loaded
and fixed, so what varies is the input. Needs the `seldon-mesh[huggingface]` extra.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from model_runtime.errors import BadParameter, BadRequest, LoadError
from model_runtime.runtimes.common import load_failure
from model_runtime.runtimes.huggingface_codecs import JSONLIST, OUTPUT_NAME, decode_call, encode_predictions
from model_runtime.storage import fetch
from model_runtime.tensors import Tensor

EXTRA_HINT = "HUGGINGFACE_SERVER needs the seldon-mesh[huggingface] extra (transformers, torch)"
ARGS_HINT = (
    " (the elements of an input named `args` are the pipeline's positional arguments, as in MLServer; "
    "send a batch as one input named `array_inputs`)"
)
# The inputs each task reads (MLServer's metadata names), for the V2 model metadata.
_TASK_INPUTS: dict[str, tuple[str, ...]] = {
    "text-classification": ("args",),
    "token-classification": ("args",),
    "feature-extraction": ("args",),
    "question-answering": ("question", "context"),
    "zero-shot-classification": ("array_inputs", "candidate_labels"),
}


class HuggingFaceServer:
    def __init__(
        self,
        task: str = "",
        task_suffix: str = "",
        pretrained_model: str = "",
        pretrained_tokenizer: str = "",
        optimum_model: bool = False,
        device: int | str = -1,
        batch_size: int = 0,
        framework: str = "",
        inter_op_threads: int = 0,
        intra_op_threads: int = 0,
        model_kwargs: str = "",
        model_uri: str = "",
        model_cache_dir: str = "",
    ) -> None:
        if not task:
            raise BadParameter("HUGGINGFACE_SERVER needs the `task` parameter (e.g. text-classification)")
        if batch_size < 0 or inter_op_threads < 0 or intra_op_threads < 0:
            raise BadParameter("batch_size, inter_op_threads and intra_op_threads cannot be negative")
        self.task = f"{task}{task_suffix}" if task == "translation" else task
        self.pretrained_model = pretrained_model
        self.pretrained_tokenizer = pretrained_tokenizer
        self.optimum_model = bool(optimum_model)
        self.device = _device(device)
        self.batch_size = batch_size
        self.framework = framework
        self.threads = (inter_op_threads, intra_op_threads)
        self.model_kwargs = _json_object("model_kwargs", model_kwargs)
        self.model_uri = model_uri
        self.cache_dir = model_cache_dir
        self._pipeline: Any = None
        self._versions: list[str] = []

    def load(self) -> None:
        model = self.pretrained_model or self._model_folder()  # before the imports, which take seconds
        try:
            import torch
            import transformers
            from transformers.pipelines import TASK_ALIASES, check_task
        except ImportError as exc:
            raise LoadError(f"{EXTRA_HINT}: {exc}") from exc
        try:
            check_task(self.task)
        except KeyError as exc:
            raise BadParameter(f"task {self.task!r} is not a transformers pipeline task: {exc}") from None
        self.task = TASK_ALIASES.get(self.task, self.task)  # Optimum knows no aliases (sentiment-analysis)
        tokenizer = self.pretrained_tokenizer or model
        inter_op, intra_op = self.threads
        if inter_op:
            torch.set_num_interop_threads(inter_op)
        if intra_op:
            torch.set_num_threads(intra_op)
        options: dict[str, Any] = {"model": model, "tokenizer": tokenizer}
        if self.batch_size:
            options["batch_size"] = self.batch_size
        if self.framework:
            options["framework"] = self.framework
        if self.model_kwargs:
            options["model_kwargs"] = self.model_kwargs
        try:
            if self.optimum_model:  # ONNX Runtime on the CPU, as MLServer runs Optimum models
                from optimum.pipelines import pipeline as optimum_pipeline

                self._pipeline = optimum_pipeline(self.task, accelerator="ort", **options)
            else:
                self._pipeline = transformers.pipeline(self.task, device=self.device, **options)
        except ImportError as exc:
            raise LoadError(f"{EXTRA_HINT}: {exc}") from exc
        except Exception as exc:
            raise LoadError(
                f"cannot load the {self.task} pipeline from {model}: {type(exc).__name__}: {exc}"
            ) from exc
        self._pad_for_batches()
        self._versions = [f"transformers/{transformers.__version__}", f"torch/{torch.__version__}"]

    def _model_folder(self) -> str:
        if not self.model_uri:
            raise LoadError("HUGGINGFACE_SERVER needs a modelUri or the `pretrained_model` parameter")
        try:
            folder = fetch(self.model_uri, Path(self.cache_dir) if self.cache_dir else None)
        except LoadError:
            raise
        except Exception as exc:
            raise load_failure(Path(self.model_uri), exc) from exc
        if not (folder / "config.json").is_file():
            raise LoadError(
                f"no Hugging Face model in {folder} (config.json missing): save it with save_pretrained(), "
                "or name a hub model with the `pretrained_model` parameter"
            )
        return str(folder)

    def _pad_for_batches(self) -> None:
        """Batches of texts of different lengths are padded; models without a pad token pad with EOS."""
        tokenizer = getattr(self._pipeline, "tokenizer", None)
        if self.batch_size <= 1 or tokenizer is None:
            return
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token

    def infer_tensors(self, inputs: list[Tensor], parameters: dict[str, Any]) -> list[Tensor]:
        args, kwargs = decode_call(inputs)
        if self._predict_proba(inputs) and self.task == "image-classification":
            kwargs["top_k"] = self._pipeline.model.config.num_labels
        try:
            predictions = self._pipeline(*args, **kwargs)
        except Exception as exc:
            hint = ARGS_HINT if isinstance(exc, TypeError) and len(args) > 1 else ""
            raise BadRequest(
                f"the {self.task} pipeline cannot run this request: {type(exc).__name__}: {exc}{hint}"
            ) from exc
        try:
            return [encode_predictions(predictions)]
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"the {self.task} pipeline's answer cannot be encoded: {exc}") from exc

    @staticmethod
    def _predict_proba(inputs: list[Tensor]) -> bool:
        wanted = {bool(t.parameters.get("predict_proba", False)) for t in inputs}
        if len(wanted) > 1:
            raise BadRequest("predict_proba must be the same on every input of a request")
        return wanted.pop() if wanted else False

    def init_metadata(self) -> dict[str, Any]:
        return {"platform": "huggingface", "versions": self._versions}

    def tensor_metadata(self) -> dict[str, Any]:
        names = _TASK_INPUTS.get(self.task, ("array_inputs",))
        inputs = [
            {"name": name, "datatype": "BYTES", "shape": [-1], "parameters": {"content_type": "str"}}
            for name in names
        ]
        output = {
            "name": OUTPUT_NAME,
            "datatype": "BYTES",
            "shape": [-1, 1],
            "parameters": {"content_type": JSONLIST},
        }
        return {"inputs": inputs, "outputs": [output], "parameters": {"task": self.task}}


def _device(value: int | str) -> int | str:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def _json_object(name: str, text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadParameter(f"{name} must be a JSON object: {exc}") from exc
    if not isinstance(value, dict):
        raise BadParameter(f"{name} must be a JSON object, got {type(value).__name__}")
    return value
