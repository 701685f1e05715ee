"""Names of the Kubernetes objects a SeldonDeployment renders to, as Seldon Core names them.

Users and tools rely on these names (`kubectl get svc iris-model-default`, dashboards selecting on
`seldon-deployment-id`), so they follow Seldon's scheme; a name past the 63-character DNS-1123 label limit
is shortened the way Seldon does it: `seldon-` and the MD5 hex digest of the long name.
"""

from __future__ import annotations

import hashlib

from mesh.spec import PredictorSpec, SeldonDeployment
from mesh.spec import annotations as names

MAX_NAME = 63


def shorten(name: str) -> str:
    """`name` if it fits a DNS-1123 label, else `seldon-<md5 hex of name>` (39 characters)."""
    if len(name) <= MAX_NAME:
        return name
    return "seldon-" + hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()


def predictor_service(deployment: SeldonDeployment, predictor: PredictorSpec) -> str:
    """The predictor's Service (ports 8000 REST, 5001 gRPC): `<sdep>-<predictor>`, or `seldon.io/svc-name`."""
    custom = predictor.annotations.get(names.SVC_NAME)
    if custom:
        return custom
    return shorten(f"{deployment.metadata.name}-{predictor.name}")


def component_deployment(
    deployment: SeldonDeployment, predictor: PredictorSpec, index: int, containers: list[str]
) -> str:
    """A componentSpec's Deployment: `<sdep>-<predictor>-<index>-<container>-<container>...`."""
    return shorten("-".join([deployment.metadata.name, predictor.name, str(index), *containers]))


def component_service(deployment: SeldonDeployment, predictor: PredictorSpec, node: str) -> str:
    """A graph node's Service: `<sdep>-<predictor>-<node>`."""
    return shorten(f"{deployment.metadata.name}-{predictor.name}-{node}")


def extproc_name(deployment: SeldonDeployment, predictor: PredictorSpec) -> str:
    """The graph executor of a predictor that needs one (Deployment, Service and ConfigMap)."""
    return shorten(f"{deployment.metadata.name}-{predictor.name}-extproc")


def graph_config(deployment: SeldonDeployment, predictor: PredictorSpec) -> str:
    """The ConfigMap holding the graph config of a predictor's extproc."""
    return shorten(f"{deployment.metadata.name}-{predictor.name}-graph")


def ingress_name(deployment: SeldonDeployment) -> str:
    """VirtualService, DestinationRule, HTTPRoute and GRPCRoute of the deployment: its own name."""
    return shorten(deployment.metadata.name)


def subset(predictor: PredictorSpec) -> str:
    """The DestinationRule subset of a predictor: its name, shortened (Istio wants a DNS label)."""
    return shorten(predictor.name)
