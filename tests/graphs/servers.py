"""Servers the graph tests put into graphs next to our runtimes: a real MLServer (V2) and a junk server."""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from bench.envs import mlserver_bin
from tests.helpers.mesh import wait_for
from tests.helpers.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


class MLServer:
    """`mlserver start` on an iris LogisticRegression trained with MLServer's own scikit-learn."""

    def __init__(self, folder: Path, model_name: str = "iris") -> None:
        self.folder = folder
        self.model_name = model_name
        self.http_port, self.grpc_port = free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> MLServer:
        """Start it in the background; `wait_ready` waits until it serves the model."""
        bin_dir = mlserver_bin()
        model_dir = self.folder / self.model_name
        train = [str(bin_dir / "python"), str(ROOT / "examples/iris/train.py"), str(model_dir)]
        subprocess.run(train, check=True, capture_output=True)
        settings = {"name": self.model_name, "implementation": "mlserver_sklearn.SKLearnModel"}
        (model_dir / "model-settings.json").write_text(
            json.dumps({**settings, "parameters": {"uri": "./model.joblib"}})
        )
        server = {
            "http_port": self.http_port,
            "grpc_port": self.grpc_port,
            "metrics_port": free_port(),
            "parallel_workers": 0,
            "host": "127.0.0.1",
        }
        (self.folder / "settings.json").write_text(json.dumps(server))
        with (self.folder / "mlserver.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(bin_dir / "mlserver"), "start", str(self.folder)], stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def wait_ready(self) -> MLServer:
        url = f"http://127.0.0.1:{self.http_port}/v2/models/{self.model_name}/ready"
        wait_for(lambda: self._alive() and httpx.get(url).status_code == 200, 120, "MLServer to be ready")
        return self

    def _alive(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError((self.folder / "mlserver.log").read_text()[-3000:])
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class _Junk(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = b"<html>this is not a SeldonMessage</html>"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class JunkServer:
    """A node that answers every POST with 200 and a body that is not JSON."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Junk)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> JunkServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
