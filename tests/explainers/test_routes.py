"""The explainer at the gateway and in the local plan, without processes: Seldon's path, its cluster, its
scope, the incremental builder agreeing with the plain translation, and the supervisor's launch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from envoy.config.route.v3 import route_pb2, scoped_route_pb2

from mesh.local.plan import plan_deployment
from mesh.spec import SeldonDeployment, parse_deployment
from xds_controller import resource_types
from xds_controller.builder import SnapshotBuilder
from xds_controller.translate import ComponentEndpoints, ComponentKey, GatewaySettings, Upstream, translate
from xds_controller.translate.explainer import explainer_key

GATEWAY = GatewaySettings()
SCOPED = GatewaySettings(scoped=True)


def _deployment(
    name: str, explainer: dict[str, Any] | None, predictors: tuple[str, ...] = ("default",)
) -> SeldonDeployment:
    spec: dict[str, Any] = {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": name, "namespace": "seldon"},
        "spec": {
            "predictors": [
                {
                    "name": p,
                    "traffic": 100 // len(predictors),
                    "graph": {
                        "name": "classifier",
                        "implementation": "SKLEARN_SERVER",
                        "modelUri": "./model",
                    },
                    **({"explainer": explainer} if explainer else {}),
                }
                for p in predictors
            ]
        },
    }
    return parse_deployment(spec)


ANCHORS = {"type": "AnchorTabular", "modelUri": "./explainer"}


def _routes(config: route_pb2.RouteConfiguration) -> dict[str, Any]:
    return {r.match.prefix: r for host in config.virtual_hosts for r in host.routes if r.match.prefix}


def test_the_explainer_path_routes_to_its_cluster_rewritten_to_the_root() -> None:
    resources = translate([_deployment("iris", ANCHORS, ("main", "canary"))], {}, GATEWAY)
    (config,) = resources.routes
    assert isinstance(config, route_pb2.RouteConfiguration)
    routes = _routes(config)
    for predictor in ("main", "canary"):
        route = routes[f"/seldon/seldon/iris-explainer/{predictor}/"]
        assert route.route.cluster == f"seldon.iris-explainer.{predictor}.explainer.http"
        assert route.route.prefix_rewrite == "/"
        assert not route.route.request_mirror_policies
        assert [(h.header.key, h.header.value) for h in route.response_headers_to_add] == [
            ("Seldon-Predictor", predictor)
        ]
    clusters = {resource_types.resource_name(c) for c in resources.clusters}
    assert "seldon.iris-explainer.main.explainer.http" in clusters
    assert "/seldon/seldon/iris/" in routes  # the model's own route is unchanged


def test_no_explainer_no_explainer_route_and_a_deployment_of_that_name_keeps_it() -> None:
    plain = translate([_deployment("iris", None)], {}, GATEWAY)
    assert not [p for p in _routes(plain.routes[0]) if "explainer" in p]
    taken = translate([_deployment("iris", ANCHORS), _deployment("iris-explainer", None)], {}, GATEWAY)
    routes = _routes(taken.routes[0])
    assert "/seldon/seldon/iris-explainer/" in routes
    assert "/seldon/seldon/iris-explainer/default/" not in routes


def test_a_scoped_gateway_selects_the_explainer_by_its_path() -> None:
    resources = translate([_deployment("iris", ANCHORS)], {}, SCOPED)
    keys = {
        tuple(f.string_key for f in s.key.fragments): s.route_configuration_name
        for s in resources.scoped_routes
        if isinstance(s, scoped_route_pb2.ScopedRouteConfiguration)
    }
    assert keys[("seldon", "iris-explainer")] == "seldon-gateway/seldon/iris-explainer"
    assert keys[("seldon", "iris")] == "seldon-gateway/seldon/iris"
    config = next(
        r
        for r in resources.routes
        if isinstance(r, route_pb2.RouteConfiguration) and r.name == "seldon-gateway/seldon/iris-explainer"
    )
    assert "/seldon/seldon/iris-explainer/default/" in _routes(config)


@pytest.mark.parametrize("gateway", [GATEWAY, SCOPED], ids=["one-route-config", "scoped"])
def test_the_incremental_builder_holds_the_explainers_translate_gives(gateway: GatewaySettings) -> None:
    with_one, without = _deployment("iris", ANCHORS), _deployment("iris", None)
    key = explainer_key("seldon", "iris", "default")
    endpoints = {key: ComponentEndpoints(http=(Upstream("127.0.0.1", 9100),))}
    builder = SnapshotBuilder(gateway)
    built = builder.build([with_one], endpoints)
    reference = translate([with_one], endpoints, gateway).to_snapshot()
    for url in (resource_types.CLUSTER, resource_types.ENDPOINT, resource_types.SCOPED_ROUTE):
        assert set(built.get(url)) == set(reference.get(url))
    assert "seldon.iris-explainer.default.explainer.http" in set(built.get(resource_types.ENDPOINT))
    removed = builder.update([without], [], {})  # the explainer is taken out of the spec
    assert "seldon.iris-explainer.default.explainer.http" not in set(removed.get(resource_types.CLUSTER))
    again = builder.update([with_one], [], endpoints)
    assert "seldon.iris-explainer.default.explainer.http" in set(again.get(resource_types.CLUSTER))
    gone = builder.update([], [("seldon", "iris")], {})
    assert not [c for c in gone.get(resource_types.CLUSTER) if c.startswith("seldon.iris")]


def test_the_local_plan_runs_the_explainer_server_through_its_environment(tmp_path: Path) -> None:
    deployment = _deployment(
        "iris", {"type": "KernelShap", "initParameters": '{"seed": 0}', "config": {"nsamples": "50"}}
    )
    plans = {p.key: p for p in plan_deployment(deployment, tmp_path)}
    plan = plans[ComponentKey("seldon", "iris-explainer", "default", "explainer")]
    assert plan.launch is not None
    assert plan.launch.program[1].endswith("explainer_server/env.py")
    assert plan.launch.program[2] == "launch"
    args = plan.launch.args
    assert args[args.index("--type") + 1] == "KernelShap"
    assert args[args.index("--deployment") + 1] == "iris"
    assert args[args.index("--model-name") + 1] == "classifier"
    assert args[args.index("--init-parameters") + 1] == '{"seed": 0}'
    assert args[args.index("--config") + 1] == '{"nsamples": "50"}'
    assert plan.launch.cwd == tmp_path.resolve()
    model = plans[ComponentKey("seldon", "iris", "default", "classifier")]
    assert model.launch is not None and not model.launch.program


def test_apply_refuses_a_saved_explainer_the_local_mesh_cannot_read(tmp_path: Path) -> None:
    from mesh.local.limits import problems, warnings

    remote = _deployment("iris", {"type": "AnchorTabular", "modelUri": "gs://bucket/explainer"})
    missing = _deployment("iris", {"type": "AnchorTabular", "modelUri": "./nowhere"})
    (tmp_path / "model").mkdir()
    for deployment, says in ((remote, "storage initializer"), (missing, "no such file or folder")):
        found = [
            e for e in problems(deployment, tmp_path) if e.path == "spec.predictors[0].explainer.modelUri"
        ]
        assert found and says in found[0].message, found
        assert not [w for w in warnings(deployment) if "explainer" in w.path]  # served, not ignored
    (tmp_path / "explainer").mkdir()
    assert not problems(_deployment("iris", ANCHORS), tmp_path)
