"""The runtime's side of the TensorFlow worker (`tensorflow_worker`): start it, load, run, restart.

One request at a time goes down the pipe (a lock), so several threads of the runtime may share a worker.
A worker that died (killed, out of memory) is started again, and its model loaded again, on the next
call; the call that found it dead fails with a 503 naming the exit code.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from generated.tensorflow import signature_pb2
from model_runtime.errors import BadRequest, LoadError, NotReady, UserCodeError
from model_runtime.runtimes import tensorflow_worker as frames

log = logging.getLogger(__name__)

Array = np.ndarray[Any, Any]
WORKER_SCRIPT = Path(frames.__file__).resolve()


class TensorFlowWorker:
    def __init__(self, python: Path, model_dir: Path, tags: tuple[str, ...] = ("serve",)) -> None:
        self.python = python
        self.model_dir = model_dir
        self.tags = tags
        self.tf_version = ""
        self.signatures: Mapping[str, signature_pb2.SignatureDef] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def load(self) -> Mapping[str, signature_pb2.SignatureDef]:
        """Start the worker and load the SavedModel; its SignatureDefs by name (`LoadError` on failure)."""
        with self._lock:
            self._start()
            return self.signatures

    def run(self, signature: str, inputs: dict[str, Array]) -> dict[str, Array]:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._start()
            header, outputs = self._call({"op": "run", "signature": signature}, inputs)
            if header.get("ok"):
                return outputs
            error = str(header.get("error", "the TensorFlow worker failed"))
            if header.get("kind") == "invalid_argument":
                raise BadRequest(error)
            raise UserCodeError(error)

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _start(self) -> None:
        self._stop()
        try:
            self._process = subprocess.Popen(
                # -P: the script's folder is not on sys.path (runtimes/tensorflow.py would shadow TensorFlow)
                [str(self.python), "-P", str(WORKER_SCRIPT)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        except OSError as exc:
            raise LoadError(f"cannot start the TensorFlow worker with {self.python}: {exc}") from exc
        try:
            header, _ = self._call({"op": "load", "path": str(self.model_dir), "tags": list(self.tags)})
        except NotReady as exc:
            raise LoadError(f"the TensorFlow worker could not load {self.model_dir}: {exc.info}") from exc
        if not header.get("ok"):
            self._stop()
            raise LoadError(f"TensorFlow cannot load {self.model_dir}: {header.get('error')}")
        self.tf_version = str(header.get("version", ""))
        self.signatures = {
            name: signature_pb2.SignatureDef.FromString(base64.b64decode(encoded))
            for name, encoded in dict(header.get("signatures") or {}).items()
        }
        log.info(
            "TensorFlow %s loaded %s: signatures %s", self.tf_version, self.model_dir, sorted(self.signatures)
        )

    def _call(self, header: dict[str, Any], arrays: dict[str, Array] | None = None) -> frames.Frame:
        process = self._process
        assert process is not None
        try:
            frames.write_frame(cast(IO[bytes], process.stdin), header, arrays)
            return frames.read_frame(cast(IO[bytes], process.stdout))
        except (OSError, frames.FrameError, ValueError) as exc:
            self._stop()
            raise NotReady(f"the TensorFlow worker stopped (exit code {process.returncode}): {exc}") from exc

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
