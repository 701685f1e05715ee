"""A model as Seldon's docs write one: SeldonComponent, class_names set in __init__, load(), metrics, tags,
init_metadata, health_status, send_feedback, a custom_service and SeldonMicroserviceException."""

import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np

from seldon_core.flask_utils import SeldonMicroserviceException
from seldon_core.metrics import create_counter, create_gauge, create_timer
from seldon_core.user_model import SeldonComponent, SeldonResponse


class IrisClassifier(SeldonComponent):
    def __init__(self, multiplier=1.0):
        super().__init__()
        self.multiplier = multiplier
        self.class_names = ["setosa", "versicolor"]
        self.ready = False
        self.rewards = []

    def load(self):
        self.ready = True

    def predict(self, X, features_names=None, meta=None):
        X = np.asarray(X, dtype=float)
        if X.min() < 0:
            raise SeldonMicroserviceException("negative measurements", status_code=400, reason="MY_REASON")
        if X.max() > 1000:
            raise SeldonMicroserviceException("out of range", status_code=422, reason="OUT_OF_RANGE")
        first = X[:, :1] * self.multiplier
        return SeldonResponse(
            np.hstack([first, 1 - first]),
            tags={"loaded": self.ready},
            metrics=[create_counter("iris_requests", 1)],
        )

    def tags(self):
        return {"model": "iris"}

    def metrics(self):
        return [create_gauge("iris_gauge", 7), create_timer("iris_timer", 12.5)]

    def init_metadata(self):
        return {
            "name": "iris",
            "versions": ["iris/v1"],
            "platform": "seldon",
            "inputs": [{"messagetype": "tensor", "schema": {"names": ["a", "b"], "shape": [2]}}],
            "outputs": [{"messagetype": "tensor", "schema": {"shape": [2]}}],
            "custom": {"team": "migration"},
        }

    def health_status(self):
        return {"healthy": self.ready, "rewards": len(self.rewards)}

    def send_feedback(self, features, feature_names, reward, truth, routing=None):
        self.rewards.append(reward)
        return []

    def custom_service(self):
        model = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = f"custom service of a model loaded={model.ready}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):
                pass

        server = HTTPServer(("127.0.0.1", int(os.environ["CUSTOM_SERVICE_PORT"])), Handler)
        threading.current_thread().name = "custom-service"
        server.serve_forever()
