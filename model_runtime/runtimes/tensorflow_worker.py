"""The TensorFlow worker: one SavedModel loaded in a process of its own, run by signature over a pipe.

TensorFlow cannot live in the runtime's process: its Python package registers `tensorflow.TensorProto`
and friends in protobuf's default pool, which `generated.tensorflow` (Seldon's `tftensor`) already holds,
and the second registration fails. So `TENSORFLOW_SERVER` runs this file as a script with the
interpreter of TensorFlow's own environment (`tensorflow_env`), as Seldon runs TF Serving beside its
proxy, and talks to it through stdin/stdout (`tensorflow_client`).

Run as a script it imports nothing of seldon-mesh: only the standard library, numpy and TensorFlow.
Imported as a module (by the client) it gives the frame codec both sides share and never imports
TensorFlow.

A frame is a 4-byte big-endian length, a JSON header of that length, then the bytes of each array the
header lists under `arrays` (`{name, dtype, shape, nbytes}`; numeric arrays are C-order little-endian
bytes of numpy dtype `dtype`, string arrays have `dtype: "string"` and the `lengths` of their items).
Requests: `{"op": "load", "path", "tags"}` answers the meta graph's SignatureDefs (serialized, base64)
and the TensorFlow version; `{"op": "run", "signature"}` with the input arrays answers the output arrays.
A failure answers `{"ok": false, "error", "kind"}` (`invalid_argument` for a bad input, else `internal`)
and the worker carries on.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import struct
import sys
from typing import IO, Any

import numpy as np

Array = np.ndarray[Any, Any]
Frame = tuple[dict[str, Any], dict[str, Array]]
_LENGTH = struct.Struct(">I")
MAX_HEADER = 64 << 20


class FrameError(Exception):
    """The stream ended or held something that is not a frame."""


def write_frame(stream: IO[bytes], header: dict[str, Any], arrays: dict[str, Array] | None = None) -> None:
    chunks: list[bytes] = []
    described: list[dict[str, Any]] = []
    for name, value in (arrays or {}).items():
        array = np.asarray(value)
        if array.dtype.kind in "OSU":
            items = [_as_bytes(v) for v in array.reshape(-1)]
            data = b"".join(items)
            described.append(
                {
                    "name": name,
                    "dtype": "string",
                    "shape": list(array.shape),
                    "nbytes": len(data),
                    "lengths": [len(i) for i in items],
                }
            )
        else:
            little = array.astype(array.dtype.newbyteorder("<"), copy=False)
            data = np.ascontiguousarray(little).tobytes()
            described.append(
                {"name": name, "dtype": little.dtype.str, "shape": list(array.shape), "nbytes": len(data)}
            )
        chunks.append(data)
    encoded = json.dumps({**header, "arrays": described}).encode()
    stream.write(_LENGTH.pack(len(encoded)) + encoded)
    for chunk in chunks:
        stream.write(chunk)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Frame:
    (length,) = _LENGTH.unpack(_read(stream, _LENGTH.size))
    if length > MAX_HEADER:
        raise FrameError(f"frame header of {length} bytes")
    header = json.loads(_read(stream, length))
    arrays: dict[str, Array] = {}
    for spec in header.pop("arrays", []):
        data = _read(stream, int(spec["nbytes"]))
        shape = tuple(int(d) for d in spec["shape"])
        if spec["dtype"] == "string":
            items, offset = [], 0
            for size in spec["lengths"]:
                items.append(data[offset : offset + size])
                offset += size
            array = np.empty(len(items), dtype=object)
            array[:] = items
            arrays[spec["name"]] = array.reshape(shape)
        else:
            arrays[spec["name"]] = np.frombuffer(data, dtype=np.dtype(spec["dtype"])).reshape(shape)
    return header, arrays


def _read(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) != size:
        raise FrameError("the stream ended inside a frame" if data else "the stream ended")
    return data


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


# --- the worker itself (only when run as a script) ----------------------------------------------------


class _Model:
    def __init__(self, tf: Any, path: str, tags: list[str]) -> None:
        saved_model_pb2 = importlib.import_module("tensorflow.core.protobuf.saved_model_pb2")

        self.tf = tf
        self.loaded = tf.saved_model.load(path, tags=tags or None)
        saved = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as file:
            saved.ParseFromString(file.read())
        wanted = set(tags or ["serve"])
        graphs = [g for g in saved.meta_graphs if wanted <= set(g.meta_info_def.tags)] or list(
            saved.meta_graphs
        )
        self.signature_defs = {
            name: base64.b64encode(sig.SerializeToString()).decode()
            for name, sig in graphs[0].signature_def.items()
            if name in self.loaded.signatures
        }

    def run(self, signature: str, inputs: dict[str, Array]) -> dict[str, Array]:
        function = self.loaded.signatures[signature]
        specs = function.structured_input_signature[1]
        feed = {
            name: self.tf.convert_to_tensor(value, dtype=specs[name].dtype) for name, value in inputs.items()
        }
        outputs = function(**feed)
        return {name: tensor.numpy() for name, tensor in outputs.items()}


def _serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    tf: Any = importlib.import_module("tensorflow")  # untyped, and only in TensorFlow's own env

    model: _Model | None = None
    while True:
        try:
            header, arrays = read_frame(requests)
        except FrameError:
            return  # the runtime closed the pipe: stop
        try:
            if header["op"] == "load":
                model = _Model(tf, header["path"], header.get("tags") or [])
                write_frame(
                    replies, {"ok": True, "signatures": model.signature_defs, "version": tf.__version__}
                )
            elif header["op"] == "run" and model is not None:
                write_frame(replies, {"ok": True}, model.run(header["signature"], arrays))
            else:
                write_frame(
                    replies, {"ok": False, "error": f"bad request {header['op']!r}", "kind": "internal"}
                )
        except (tf.errors.InvalidArgumentError, ValueError, TypeError, KeyError) as exc:
            write_frame(replies, {"ok": False, "error": _message(exc), "kind": "invalid_argument"})
        except Exception as exc:
            write_frame(
                replies, {"ok": False, "error": f"{type(exc).__name__}: {_message(exc)}", "kind": "internal"}
            )


def _message(exc: Exception) -> str:
    message = getattr(exc, "message", None)
    return str(message if isinstance(message, str) else exc).strip()


def main() -> None:
    # Frames go out on a private copy of stdout; whatever TensorFlow or a model prints goes to stderr.
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    _serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
