"""HUGGINGFACE_SERVER's request and response codecs: V2 tensors <-> a pipeline call and its answer.

They follow MLServer's Hugging Face runtime, which Seldon serves this server with: each input is decoded
by its own `parameters.content_type` (the request-level one is ignored), an input named `args` is spread
as positional arguments, one named `array_inputs` is passed as the first positional argument (a list:
a batch), and every other input becomes the keyword argument of its name. The answer is one BYTES output
`output` of content type `hg_jsonlist`: one JSON document per prediction, shape `[n, 1]`.

Content types: `str` (the default for BYTES inputs: a list of strings), `hg_json` (one JSON document),
`hg_jsonlist` (a list of them), `raw` (the first element as a scalar), `nplist` (a list of arrays along
the first axis), `np` (the array itself), `base64` (a list of decoded bytes, for audio pipelines) and
`pillow_image` (base64 images, when Pillow is installed). A numeric input without a content type is
passed as a (nested) list; MLServer passes it as empty strings. Neighbours: `huggingface` (the runtime).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from model_runtime.errors import BadRequest
from model_runtime.tensors import BYTES, Tensor, bytes_array

OUTPUT_NAME = "output"
JSONLIST = "hg_jsonlist"


def decode_call(inputs: list[Tensor]) -> tuple[list[Any], dict[str, Any]]:
    """The positional and keyword arguments of the pipeline call these inputs describe."""
    values = {tensor.name: decode_input(tensor) for tensor in inputs}
    args = values.pop("args", [])
    if not isinstance(args, list):
        args = [args]
    if "array_inputs" in values:
        batch = values.pop("array_inputs")
        args = [list(batch) if isinstance(batch, list | tuple) else batch, *args]
    return args, values


def decode_input(tensor: Tensor) -> Any:
    content_type = str(tensor.parameters.get("content_type") or "")
    if not content_type and tensor.datatype != BYTES:
        return tensor.data.tolist()
    decoder = _DECODERS.get(content_type or "str")
    if decoder is None:
        known = ", ".join(sorted(_DECODERS))
        raise BadRequest(f"input {tensor.name!r}: unknown content_type {content_type!r} (one of {known})")
    return decoder(tensor)


def encode_predictions(predictions: Any) -> Tensor:
    """The pipeline's answer as MLServer's `hg_jsonlist` output (a non-list answer is one prediction)."""
    items = predictions if isinstance(predictions, list) else [predictions]
    data = bytes_array([json.dumps(item, default=_jsonable).encode() for item in items])
    return Tensor(
        OUTPUT_NAME, BYTES, [len(items), 1], data.reshape(len(items), 1), {"content_type": JSONLIST}
    )


def _jsonable(value: Any) -> Any:
    """What `json` cannot write itself: numpy and torch values, and images (as data URLs, as MLServer)."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if hasattr(value, "tolist") and callable(value.tolist):  # torch.Tensor
        return value.tolist()
    if hasattr(value, "save") and hasattr(value, "mode"):  # PIL.Image.Image
        import io

        buffer = io.BytesIO()
        image_format = value.format or "PNG"
        value.save(buffer, format=image_format)
        encoded = base64.b64encode(buffer.getvalue()).decode()
        return f"data:image/{image_format.lower()};base64,{encoded}"
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _elements(tensor: Tensor) -> list[Any]:
    return list(tensor.data.reshape(-1).tolist())


def _strings(tensor: Tensor) -> list[str]:
    out: list[str] = []
    for item in _elements(tensor):
        if not isinstance(item, bytes):
            raise BadRequest(
                f"input {tensor.name!r}: content_type str needs BYTES data, got {tensor.datatype}"
            )
        try:
            out.append(item.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise BadRequest(f"input {tensor.name!r}: not UTF-8 text: {exc}") from exc
    return out


def _json_documents(tensor: Tensor) -> list[Any]:
    documents: list[Any] = []
    for index, text in enumerate(_strings(tensor)):
        try:
            documents.append(json.loads(text))
        except json.JSONDecodeError as exc:
            raise BadRequest(f"input {tensor.name!r}: element {index} is not JSON: {exc}") from exc
    return documents


def _one_json(tensor: Tensor) -> Any:
    documents = _json_documents(tensor)
    if not documents:
        raise BadRequest(f"input {tensor.name!r}: content_type hg_json needs one JSON document")
    return documents[0]


def _raw(tensor: Tensor) -> Any:
    if tensor.data.size == 0:
        raise BadRequest(f"input {tensor.name!r}: content_type raw needs one element")
    if tensor.datatype == BYTES:
        return _strings(tensor)[0]
    return _elements(tensor)[0]


def _base64(tensor: Tensor) -> list[bytes]:
    out: list[bytes] = []
    for item in _elements(tensor):
        try:
            out.append(base64.b64decode(item, validate=True))
        except (binascii.Error, TypeError, ValueError) as exc:
            raise BadRequest(f"input {tensor.name!r}: not base64: {exc}") from exc
    return out


def _images(tensor: Tensor) -> list[Any]:
    try:
        from PIL import Image
    except ImportError:
        raise BadRequest(f"input {tensor.name!r}: content_type pillow_image needs Pillow installed") from None
    import io

    images: list[Any] = []
    for blob in _base64(tensor):
        try:
            images.append(Image.open(io.BytesIO(blob)))
        except Exception as exc:
            raise BadRequest(f"input {tensor.name!r}: not an image: {exc}") from exc
    return images


def _numeric(tensor: Tensor, what: str) -> Any:
    if tensor.datatype == BYTES:
        raise BadRequest(f"input {tensor.name!r}: content_type {what} needs numeric data, got BYTES")
    return tensor.data


_DECODERS: dict[str, Callable[[Tensor], Any]] = {
    "str": _strings,
    "hg_json": _one_json,
    JSONLIST: _json_documents,
    "raw": _raw,
    "base64": _base64,
    "pillow_image": _images,
    "np": lambda tensor: _numeric(tensor, "np"),
    "nplist": lambda tensor: list(_numeric(tensor, "nplist")),
}
