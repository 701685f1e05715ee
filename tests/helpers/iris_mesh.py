"""A `seldon-mesh up` of a few SeldonDeployments over the iris example model, for the suites that keep one
running for a module or a session (tests/fuzz, tests/local_mesh/test_seldon_api, test_request_limits).

`iris_mesh(folder, manifests, deployments)` trains examples/iris into `folder/model` (the manifests'
`modelUri: ./model`), writes the manifests beside it, starts the mesh on a free port and waits until every
named deployment is Available; on the way out it stops the mesh and removes the model and the state.
The manifests most of them share are here too: the single model over Seldon's protocol and over V2, and
a graph averaging two copies of it.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from tests.helpers.mesh import Mesh, free_port

ROOT = Path(__file__).resolve().parents[2]

IRIS_MODEL = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: iris-model, namespace: seldon}
spec:
  predictors:
    - name: default
      graph: {name: classifier, implementation: SKLEARN_SERVER, modelUri: ./model}
"""
IRIS_V2 = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: iris-v2, namespace: seldon}
spec:
  protocol: v2
  predictors:
    - name: default
      graph: {name: classifier, implementation: SKLEARN_SERVER, modelUri: ./model}
"""
_PAIR = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: {name}, namespace: seldon}}
spec:{protocol}
  predictors:
    - name: main
      graph:
        name: average
        implementation: AVERAGE_COMBINER
        children:
          - {{name: left, implementation: SKLEARN_SERVER, modelUri: ./model}}
          - {{name: right, implementation: SKLEARN_SERVER, modelUri: ./model}}
"""


def average_pair(name: str, v2: bool = False) -> str:
    """A graph `name` whose AVERAGE_COMBINER `average` has two iris children, `left` and `right`."""
    return _PAIR.format(name=name, protocol="\n  protocol: v2" if v2 else "")


def manifests(*documents: str) -> str:
    return "---".join(documents)


@contextlib.contextmanager
def iris_mesh(
    folder: Path,
    text: str,
    deployments: Iterable[str],
    timeout: float = 120,
    files: Mapping[str, str] | None = None,
) -> Iterator[Mesh]:
    """The mesh running the manifests `text` (and any `files`: name -> content, e.g. a user class) in
    `folder`, every one of `deployments` Available."""
    subprocess.run([sys.executable, str(ROOT / "examples/iris/train.py"), str(folder / "model")], check=True)
    for name, content in (files or {}).items():
        (folder / name).write_text(content)
    (folder / "mesh.yaml").write_text(text)
    running = Mesh(folder / "state", free_port()).start(folder / "mesh.yaml")
    try:
        for name in deployments:
            running.wait_state(name, "Available", timeout=timeout)
        yield running
    finally:
        running.stop()
        shutil.rmtree(folder / "model", ignore_errors=True)
        shutil.rmtree(folder / "state", ignore_errors=True)
