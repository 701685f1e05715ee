"""How a predictor's `explainer:` runs on this machine: the explainer server in its own environment.

Seldon runs the alibi explain server image as one more Deployment of the predictor; here the supervisor
runs `python explainer_server/env.py launch ...`, which creates the explainer's environment on first use
(alibi pins numpy below 2: it cannot live in the mesh's venv) and then runs the server in it. The server
asks the predictor's model for predictions through the gateway, whose address the supervisor passes on
(`SELDON_MESH_GATEWAY_URL`). Its component key is `explainer_key(...)`, the one translation routes
`/seldon/<ns>/<name>-explainer/<predictor>/` to. It starts in the manifest's folder, where relative
`initParameters.training_data` paths are read from; a local `modelUri` is resolved like a node's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mesh.local.plan import ComponentPlan, RuntimeLaunch, resolve_model_uri
from mesh.spec import PredictorSpec, SeldonDeployment
from xds_controller.translate.explainer import explainer_key

# explainer_server/ sits beside mesh/ (the repository, or site-packages); env.py runs as a script (it needs
# only the standard library), so an editable install made before the package existed still finds it
# The first start builds the explainer's environment (~3 minutes here) before the server answers at all.
READY_TIMEOUT_S = 900.0
LAUNCHER = (
    sys.executable,
    str(Path(__file__).resolve().parents[2] / "explainer_server" / "env.py"),
    "launch",
)


def _protocol(deployment: SeldonDeployment) -> str:
    return "v2" if str(deployment.spec.protocol) in ("v2", "kfserving") else "seldon"


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def plan_explainer(deployment: SeldonDeployment, predictor: PredictorSpec, base_dir: Path) -> ComponentPlan:
    namespace, name = deployment.key
    key = explainer_key(namespace, name, predictor.name)
    explainer = predictor.explainer or {}
    kind = str(explainer.get("type") or "")
    if not kind:
        return ComponentPlan(key, error="the explainer has no type")
    root = predictor.graph
    args = [
        "--type", kind,
        "--namespace", namespace,
        "--deployment", name,
        "--predictor", predictor.name,
        "--model-name", root.name,
        "--protocol", _protocol(deployment),
    ]  # fmt: skip
    if explainer.get("modelUri"):
        args += ["--model-uri", resolve_model_uri(str(explainer["modelUri"]), base_dir)]
    if explainer.get("initParameters"):
        args += ["--init-parameters", _json(explainer["initParameters"])]
    if explainer.get("config"):
        args += ["--config", _json(explainer["config"])]
    if kind == "TreeShap" and root.model_uri:  # white-box: the model itself, not its predictions
        args += ["--tree-model", resolve_model_uri(root.model_uri, base_dir)]
    replicas = explainer.get("replicas")
    count = max(int(replicas), 1) if isinstance(replicas, int) else 1
    launch = RuntimeLaunch(
        tuple(args), {}, base_dir.resolve(), program=LAUNCHER, ready_timeout_s=READY_TIMEOUT_S
    )
    return ComponentPlan(key, launch=launch, replicas=count)
