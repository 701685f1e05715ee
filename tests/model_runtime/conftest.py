"""Shared fixtures: a real iris model trained per session and real runtime processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from generated.seldon import prediction_pb2_grpc
from tests.helpers.runtime import RunningRuntime, start_runtime

TOY_MODELS = Path(__file__).resolve().parents[1] / "data" / "models" / "python"
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="session")
def iris_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("iris")
    features, labels = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=1000).fit(features, labels), folder / "model.joblib")
    return folder


@pytest.fixture(scope="module")
def sklearn_runtime(iris_dir: Path) -> Iterator[RunningRuntime]:
    with start_runtime(["--implementation", "SKLEARN_SERVER", "--model-uri", str(iris_dir)]) as runtime:
        yield runtime


def python_class(name: str, *extra: str) -> list[str]:
    return ["--class", name, "--code-dir", str(TOY_MODELS), *extra]


class Stubs:
    """Stubs for every seldon.protos service on one channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.seldon = prediction_pb2_grpc.SeldonStub(channel)
        self.model = prediction_pb2_grpc.ModelStub(channel)
        self.generic = prediction_pb2_grpc.GenericStub(channel)
        self.router = prediction_pb2_grpc.RouterStub(channel)
        self.transformer = prediction_pb2_grpc.TransformerStub(channel)
        self.output_transformer = prediction_pb2_grpc.OutputTransformerStub(channel)
        self.combiner = prediction_pb2_grpc.CombinerStub(channel)


def stubs_for(runtime: RunningRuntime) -> tuple[grpc.Channel, Stubs]:
    channel = grpc.insecure_channel(runtime.grpc_target)
    return channel, Stubs(channel)
