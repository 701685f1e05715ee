"""One small `seldon-mesh up` for the fuzz suite: a Seldon single model (iris, SKLEARN_SERVER), the same
model under `protocol: v2`, and a graph averaging two copies of it (so every graph request goes through
extproc to two real runtimes). Prepackaged servers answer data that does not fit the model with 400, as
Seldon's do; a user class that raises on it answers 500 (Seldon's choice too), so none is used here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.iris_mesh import IRIS_MODEL, IRIS_V2, average_pair, iris_mesh, manifests
from tests.helpers.mesh import Mesh

MANIFESTS = manifests(IRIS_MODEL, IRIS_V2, average_pair("pair"))
DEPLOYMENTS = ("iris-model", "iris-v2", "pair")


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    with iris_mesh(tmp_path_factory.mktemp("fuzz"), MANIFESTS, DEPLOYMENTS) as running:
        yield running
