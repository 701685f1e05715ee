"""What the graph executor (extproc) needs from a spec: which predictors need it, and the config it serves.

Two renderers run extproc: the local supervisor (`mesh.local.graphs`, one process for every deployment)
and the Kubernetes renderer (`mesh.render.extproc`, one Deployment per predictor that needs it, its config
in a ConfigMap). Both build the same document here, the versioned contract of `extproc/config.py`
(schema 1), and differ only in where a node listens: `NodeAddresses` answers that (the local endpoints,
or `<component service>.<ns>.svc.<cluster domain>:<port>` in a cluster). `needs_extproc` is the rule
`xds_controller.translate.plan.plan_predictor` applies, restated here because mesh.render may not import
xds_controller; a test holds the two to the same answer.

Which protocol a node speaks: the deployment's `protocol`, overridden per node by the annotation
`protocol.seldon-mesh.io/<node>: v2|seldon` (an external MLServer in a Seldon graph); its transport: the
node's `endpoint.type`, else the deployment's `transport`, else REST.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from mesh.spec.deployment import SeldonDeployment
from mesh.spec.graph import PredictiveUnit
from mesh.spec.pod import Container
from mesh.spec.predictor import PredictorSpec
from mesh.spec.servers import canonical_protocol

SCHEMA = 1
NODE_PROTOCOL_ANNOTATION = "protocol.seldon-mesh.io/"


class NodeAddress(NamedTuple):
    """`host:port` of a node's REST and gRPC servers; None where it has none (or none is known yet)."""

    http: str | None = None
    grpc: str | None = None


NodeAddresses = Callable[[SeldonDeployment, PredictorSpec, PredictiveUnit], NodeAddress]


def needs_extproc(predictor: PredictorSpec) -> bool:
    """More than one node, or a lone built-in node (SIMPLE_MODEL, ...: no runtime serves it)."""
    nodes = list(predictor.nodes())
    return len(nodes) != 1 or nodes[0].is_builtin


def node_protocol(deployment: SeldonDeployment, predictor: PredictorSpec, node: PredictiveUnit) -> str:
    """`v2` or `seldon`: what extproc speaks to the node."""
    annotations = {**deployment.annotations, **predictor.annotations}
    protocol = canonical_protocol(
        annotations.get(NODE_PROTOCOL_ANNOTATION + node.name, deployment.spec.protocol)
    )
    return "v2" if protocol == "v2" else "seldon"


def node_transport(deployment: SeldonDeployment, node: PredictiveUnit) -> str:
    endpoint_type = node.endpoint.type if node.endpoint is not None else None
    return (endpoint_type or deployment.spec.transport or "rest").lower()


def node_image(node: PredictiveUnit, container: Container | None) -> str:
    """What `meta.requestPath` shows for a node: its image, else its server, else its external address."""
    if container is not None and container.image:
        return container.image
    if node.is_prepackaged or node.is_builtin:
        return node.implementation
    endpoint = node.endpoint
    if endpoint is not None and endpoint.service_host:
        return f"{endpoint.service_host}:{endpoint.http_port or endpoint.service_port or endpoint.grpc_port}"
    return ""


def _node(
    node: PredictiveUnit,
    predictor: PredictorSpec,
    deployment: SeldonDeployment,
    addresses: NodeAddresses,
) -> dict[str, Any]:
    address = addresses(deployment, predictor, node)
    return {
        "name": node.name,
        "type": str(node.type or "UNKNOWN_TYPE"),
        "implementation": node.implementation,
        "methods": list(node.methods),
        "parameters": node.typed_parameters(),
        "protocol": node_protocol(deployment, predictor, node),
        "transport": node_transport(deployment, node),
        "http": address.http,
        "grpc": address.grpc,
        "image": node_image(node, predictor.container_for(node.name)),
        "logger": node.logger.model_dump(exclude_none=True) if node.logger is not None else None,
        "children": [_node(c, predictor, deployment, addresses) for c in node.children],
    }


def graph_config(deployments: Sequence[SeldonDeployment], addresses: NodeAddresses) -> dict[str, Any]:
    """The document extproc serves; `generation` is a hash of the rest, so equal inputs give equal files."""
    body = []
    for deployment in sorted(deployments, key=lambda d: d.key):
        namespace, name = deployment.key
        predictors = [
            {
                "name": predictor.name,
                "annotations": predictor.annotations,
                "graph": _node(predictor.graph, predictor, deployment, addresses),
            }
            for predictor in deployment.spec.predictors
        ]
        body.append(
            {
                "namespace": namespace,
                "name": name,
                "annotations": deployment.annotations,
                "predictors": predictors,
            }
        )
    text = json.dumps(body, sort_keys=True)
    return {
        "schema": SCHEMA,
        "generation": hashlib.sha256(text.encode()).hexdigest()[:16],
        "deployments": body,
    }
