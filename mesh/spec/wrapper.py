"""Seldon's Python class wrapper convention: which container runs a Python class, and as what kind of node.

A container follows the s2i convention (env `MODEL_NAME`, optional `SERVICE_TYPE`) or runs
`seldon-core-microservice <Class>`. The local supervisor (`mesh.local.plan`) and the Kubernetes renderer
(`mesh.render`) both start seldon-mesh's runtime for it with `--class` and `--service-type`, so the
reading is here, once.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from mesh.spec.graph import PredictiveUnit
from mesh.spec.pod import Container

SERVICE_TYPES = frozenset({"MODEL", "ROUTER", "TRANSFORMER", "OUTPUT_TRANSFORMER", "COMBINER"})


def python_class(container: Container) -> str | None:
    """The class a wrapper container serves (`MODEL_NAME`, or the word after seldon-core-microservice)."""
    env = container.env_dict()
    if env.get("MODEL_NAME"):
        return env["MODEL_NAME"]
    words = [*container.command, *container.args]
    for i, word in enumerate(words[:-1]):
        if PurePosixPath(word).name == "seldon-core-microservice":
            return words[i + 1]
    return None


def service_type(node: PredictiveUnit, container: Container | None) -> str:
    """The runtime's `--service-type`: the container's `SERVICE_TYPE`, else the node's type or methods."""
    if container is not None:
        declared = container.env_dict().get("SERVICE_TYPE", "")
        if declared in SERVICE_TYPES:
            return declared
    node_type = str(node.type or "MODEL")
    if node_type in SERVICE_TYPES:
        return node_type
    methods = set(node.methods)
    if "ROUTE" in methods:
        return "ROUTER"
    if "AGGREGATE" in methods:
        return "COMBINER"
    if "TRANSFORM_INPUT" in methods:
        return "TRANSFORMER"
    if "TRANSFORM_OUTPUT" in methods:
        return "OUTPUT_TRANSFORMER"
    return "MODEL"
