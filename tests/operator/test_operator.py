"""The operator against an emulated API server: `seldon-mesh operator` as a subprocess, SeldonDeployments
and their children created, patched and deleted through the API as kubectl and the kubelet would."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import kmock
import pytest
from lightkube import AsyncClient
from lightkube.types import PatchType

from mesh.operator import kube
from mesh.render import DEPLOYMENT_LABEL, MANAGED_BY
from tests.operator.cluster import Cluster, Operator, running_operator, wait_for

NS = "seldon"


def sdep(name: str = "iris", predictors: list[tuple[str, int]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "predictors": [
                {
                    "name": predictor,
                    "traffic": traffic,
                    "replicas": 1,
                    "graph": {
                        "name": "classifier",
                        "implementation": "SKLEARN_SERVER",
                        "modelUri": "gs://seldon-models/sklearn/iris",
                    },
                }
                for predictor, traffic in predictors or [("default", 100)]
            ]
        },
    }


def children(cluster: Cluster, name: str = "iris") -> dict[tuple[str, str], dict[str, Any]]:
    """Every object in the namespace labelled as rendered by us for SeldonDeployment `name`."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for (resource, ns, _), obj in cluster.objects.items():
        if ns != NS or obj.deleted or resource.plural == "seldondeployments":
            continue
        labels = obj.raw["metadata"].get("labels") or {}
        if labels.get(DEPLOYMENT_LABEL) == name and labels.get("app.kubernetes.io/managed-by") == MANAGED_BY:
            found[(obj.raw["kind"], obj.raw["metadata"]["name"])] = copy.deepcopy(obj.raw)
    return found


def content(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Objects without their resourceVersion (the emulator moves it on every write, even a no-op one)."""
    stripped = copy.deepcopy(objects)
    for obj in stripped.values():
        obj["metadata"].pop("resourceVersion", None)
    return stripped


def status(cluster: Cluster, name: str = "iris") -> dict[str, Any]:
    obj = cluster.find("seldondeployments", NS, name)
    return (obj or {}).get("status") or {}


def condition(cluster: Cluster, kind: str, name: str = "iris") -> dict[str, Any]:
    return next((c for c in status(cluster, name).get("conditions", []) if c["type"] == kind), {})


def events(cluster: Cluster, name: str = "iris") -> list[dict[str, Any]]:
    return [e for e in cluster.all("events", NS) if e["involvedObject"]["name"] == name]


async def create(api: AsyncClient, obj: dict[str, Any]) -> None:
    await api.create(kube.resource(obj["apiVersion"], obj["kind"])(obj))


async def make_ready(api: AsyncClient, deployment: dict[str, Any]) -> None:
    """What the Deployment controller writes once every replica is updated and available."""
    replicas = deployment["spec"].get("replicas", 1)
    body = {
        "status": {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}],
        }
    }
    resource = kube.resource("apps/v1", "Deployment")
    await api.patch(
        resource.Status, deployment["metadata"]["name"], body, namespace=NS, patch_type=PatchType.MERGE
    )


async def started(
    cluster: Cluster, api: AsyncClient, operator: Operator, obj: dict[str, Any]
) -> dict[tuple[str, str], dict[str, Any]]:
    await create(api, obj)
    await wait_for(lambda: status(cluster, obj["metadata"]["name"]).get("state"), 30, "a status", operator)
    await wait_for(lambda: children(cluster, obj["metadata"]["name"]), 30, "the rendered objects", operator)
    return children(cluster, obj["metadata"]["name"])


@pytest.mark.asyncio
async def test_create_renders_children_and_ready_deployments_make_it_available(
    cluster: Cluster, api: AsyncClient, tmp_path: Path
) -> None:
    async with running_operator(cluster, tmp_path) as operator:
        await create(api, sdep())
        await wait_for(
            lambda: ("VirtualService", "iris") in children(cluster), 30, "the VirtualService", operator
        )
        owner = cluster.find("seldondeployments", NS, "iris")
        assert owner is not None
        found = children(cluster)
        kinds = {kind for kind, _ in found}
        assert {"VirtualService", "DestinationRule"} <= kinds
        for obj in found.values():  # every child is owned, so Kubernetes collects it
            refs = obj["metadata"]["ownerReferences"]
            assert [(r["kind"], r["name"], r["uid"], r["controller"]) for r in refs] == [
                ("SeldonDeployment", "iris", owner["metadata"]["uid"], True)
            ]
        await wait_for(lambda: status(cluster).get("state") == "Creating", 30, "state Creating", operator)
        deployments = [obj for (kind, _), obj in found.items() if kind == "Deployment"]
        if deployments:
            assert condition(cluster, "Ready")["status"] == "False"
            assert condition(cluster, "DeploymentsReady")["status"] == "False"
        for deployment in deployments:
            await make_ready(api, deployment)
        await wait_for(lambda: status(cluster).get("state") == "Available", 30, "state Available", operator)
        current = status(cluster)
        generation = cluster.existing("seldondeployments", NS, "iris")["metadata"]["generation"]
        assert current["observedGeneration"] == generation
        for name in ("Ready", "DeploymentsReady", "ServicesReady", "IngressReady"):
            got = condition(cluster, name)
            assert got["status"] == "True", got
            assert got["observedGeneration"] == generation
            assert got["lastTransitionTime"]
        assert (
            current["address"]["url"]
            == "http://iris-default.seldon.svc.cluster.local:8000/api/v1.0/predictions"
        )
        for deployment in deployments:
            entry = current["deploymentStatus"][deployment["metadata"]["name"]]
            assert entry == {"replicas": 1, "availableReplicas": 1, "status": "Available"}
        if any(kind == "Service" for kind, _ in found):
            assert current["serviceStatus"]["iris-default"]["httpEndpoint"] == "iris-default.seldon:8000"
        await wait_for(lambda: len(events(cluster)) >= 2, 30, "the events", operator)
        assert [e["reason"] for e in events(cluster)] == ["Creating", "Available"]  # on change only


def weights(virtual_service: dict[str, Any]) -> set[tuple[tuple[str, int], ...]]:
    """The traffic splits of a VirtualService's weighted routes: ((subset, weight), ...) per route."""
    return {
        tuple(sorted((r["destination"]["subset"], r["weight"]) for r in http.get("route", [])))
        for http in virtual_service["spec"]["http"]
        if any("weight" in r for r in http.get("route", []))
    }


@pytest.mark.asyncio
async def test_a_weight_change_updates_the_virtual_service_and_a_dropped_predictor_is_pruned(
    cluster: Cluster, api: AsyncClient, tmp_path: Path
) -> None:
    async with running_operator(cluster, tmp_path) as operator:
        await create(api, sdep(predictors=[("a", 70), ("b", 30)]))

        def split() -> set[tuple[tuple[str, int], ...]]:
            vs = cluster.find("virtualservices", NS, "iris")
            return weights(vs) if vs else set()

        await wait_for(lambda: split() == {(("a", 70), ("b", 30))}, 30, "the 70/30 split", operator)
        before = set(children(cluster))
        assert ("DestinationRule", "iris-b") in before
        patch = {"spec": sdep(predictors=[("a", 20), ("b", 80)])["spec"]}
        await api.patch(kube.seldon_deployment(), "iris", patch, namespace=NS, patch_type=PatchType.MERGE)
        await wait_for(lambda: split() == {(("a", 20), ("b", 80))}, 30, "the 20/80 split", operator)
        generation = cluster.existing("seldondeployments", NS, "iris")["metadata"]["generation"]
        await wait_for(
            lambda: status(cluster).get("observedGeneration") == generation, 30, "the new generation"
        )

        # predictor b dropped: its objects (found by our labels) are deleted, a's stay
        patch = {"spec": sdep(predictors=[("a", 100)])["spec"]}
        await api.patch(kube.seldon_deployment(), "iris", patch, namespace=NS, patch_type=PatchType.MERGE)
        await wait_for(
            lambda: ("DestinationRule", "iris-b") not in children(cluster), 30, "b pruned", operator
        )
        after = set(children(cluster))
        assert after and after < before
        assert not [key for key in after if key[1].startswith("iris-b")]


@pytest.mark.asyncio
async def test_a_child_deleted_or_edited_by_hand_is_put_back(
    cluster: Cluster, api: AsyncClient, tmp_path: Path
) -> None:
    async with running_operator(cluster, tmp_path) as operator:
        found = await started(cluster, api, operator, sdep())
        await wait_for(
            lambda: ("VirtualService", "iris") in children(cluster), 30, "the VirtualService", operator
        )
        found = children(cluster)
        for kind, name in found:
            obj = found[(kind, name)]
            await api.delete(kube.resource(obj["apiVersion"], kind), name, namespace=NS)
            back = (kind, name)
            await wait_for(lambda: back in children(cluster), 30, f"{kind} {name} back", operator)  # noqa: B023
        vs = children(cluster)[("VirtualService", "iris")]
        edited = copy.deepcopy(vs["spec"]["gateways"])
        resource = kube.resource(vs["apiVersion"], "VirtualService")
        await api.patch(
            resource,
            "iris",
            {"spec": {"gateways": ["default/other"]}},
            namespace=NS,
            patch_type=PatchType.MERGE,
        )
        await wait_for(
            lambda: children(cluster)[("VirtualService", "iris")]["spec"]["gateways"] == edited,
            30,
            "the edit undone",
            operator,
        )
        # a field we do not render (kubectl rollout restart's annotation) is left alone
        deployments = [obj for (kind, _), obj in children(cluster).items() if kind == "Deployment"]
        for deployment in deployments:
            name = deployment["metadata"]["name"]
            restart = {
                "spec": {
                    "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}}
                }
            }
            await api.patch(
                kube.resource("apps/v1", "Deployment"),
                name,
                restart,
                namespace=NS,
                patch_type=PatchType.MERGE,
            )
            await make_ready(api, cluster.existing("deployments", NS, name))
        for deployment in deployments:
            await wait_for(lambda: status(cluster).get("state") == "Available", 30, "Available", operator)
            live = cluster.existing("deployments", NS, deployment["metadata"]["name"])
            assert (
                live["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
                == "now"
            )


@pytest.mark.asyncio
async def test_an_invalid_spec_fails_with_every_field_path_and_leaves_what_runs_alone(
    cluster: Cluster, api: AsyncClient, tmp_path: Path
) -> None:
    async with running_operator(cluster, tmp_path) as operator:
        await create(api, sdep(predictors=[("a", 70), ("b", 30)]))
        await wait_for(
            lambda: ("VirtualService", "iris") in children(cluster), 30, "the VirtualService", operator
        )
        await wait_for(lambda: status(cluster).get("state") == "Creating", 30, "Creating", operator)
        before = children(cluster)
        broken = sdep(predictors=[("a", 70), ("b", 50)])
        broken["spec"]["predictors"][1]["graph"]["implementation"] = "NO_SUCH_SERVER"
        await api.patch(
            kube.seldon_deployment(),
            "iris",
            {"spec": broken["spec"]},
            namespace=NS,
            patch_type=PatchType.MERGE,
        )
        await wait_for(lambda: status(cluster).get("state") == "Failed", 30, "state Failed", operator)
        failed = status(cluster)
        assert "spec.predictors" in failed["description"]
        assert "spec.predictors[1].graph.implementation" in failed["description"]
        ready = condition(cluster, "Ready")
        assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
        assert (
            ready["observedGeneration"]
            == cluster.existing("seldondeployments", NS, "iris")["metadata"]["generation"]
        )
        assert content(children(cluster)) == content(before)  # nothing that ran was touched
        assert [e["type"] for e in events(cluster)][-1:] == ["Warning"] or await wait_for(
            lambda: [e["type"] for e in events(cluster)][-1:] == ["Warning"], 30, "a Warning event", operator
        )


@pytest.mark.asyncio
async def test_deleting_the_seldon_deployment_removes_its_children(
    cluster: Cluster, api: AsyncClient, tmp_path: Path
) -> None:
    async with running_operator(cluster, tmp_path) as operator:
        await create(api, sdep())
        await create(api, sdep("other"))
        await wait_for(lambda: ("VirtualService", "iris") in children(cluster), 30, "iris' objects", operator)
        await wait_for(
            lambda: ("VirtualService", "other") in children(cluster, "other"), 30, "other's objects", operator
        )
        owner = cluster.find("seldondeployments", NS, "iris")
        assert owner is not None and not owner["metadata"].get("finalizers")  # nothing blocks kubectl delete
        await api.delete(kube.seldon_deployment(), "iris", namespace=NS)
        # the emulated garbage collector follows the ownerReferences the operator set
        await wait_for(lambda: not children(cluster), 30, "the children gone", operator)
        await asyncio.sleep(1)  # the operator must not recreate them from the children's delete events
        assert not children(cluster)
        assert children(cluster, "other")
        assert operator.process.poll() is None


@pytest.mark.asyncio
async def test_a_missing_secret_or_crd_is_temporary_shown_in_status_and_retried(
    cluster: Cluster, api: AsyncClient, tmp_path: Path
) -> None:
    # Gateway API ingress on a cluster that does not serve it (yet), and a Secret not there yet
    async with running_operator(cluster, tmp_path, settings={"ingress": "gateway-api"}) as operator:
        obj = sdep()
        obj["spec"]["predictors"][0]["graph"]["envSecretRefName"] = "s3-creds"
        await create(api, obj)
        await wait_for(
            lambda: condition(cluster, "DeploymentsReady").get("reason") == "MissingSecret",
            30,
            "MissingSecret",
            operator,
        )
        assert status(cluster)["state"] == "Creating"
        assert "Secret s3-creds" in condition(cluster, "DeploymentsReady")["message"]
        assert not children(cluster)  # nothing started that could not run
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s3-creds", "namespace": NS},
            "data": {},
        }
        await create(api, secret)
        # kopf retries (5 s backoff): the workloads are applied, the routes cannot be
        await wait_for(
            lambda: condition(cluster, "IngressReady").get("reason") == "KindNotServed",
            60,
            "KindNotServed",
            operator,
        )
        assert "gateway.networking.k8s.io/v1 HTTPRoute" in condition(cluster, "IngressReady")["message"]
        assert {kind for kind, _ in children(cluster)} >= {"Deployment", "Service"}
        assert status(cluster)["state"] == "Creating"
        assert operator.process.poll() is None  # retried, never a crash loop
        # the CRDs get installed: the next retry creates the routes
        for plural, kind in (("httproutes", "HTTPRoute"), ("grpcroutes", "GRPCRoute")):
            cluster.resources[f"gateway.networking.k8s.io/v1/{plural}"] = kmock.ResourceInfo(
                namespaced=True, kind=kind, verbs={"get", "list", "watch", "create", "patch", "delete"}
            )
        await wait_for(lambda: ("HTTPRoute", "iris") in children(cluster), 60, "the HTTPRoute", operator)
        await wait_for(
            lambda: condition(cluster, "IngressReady").get("status") == "True", 30, "IngressReady", operator
        )


@pytest.mark.asyncio
async def test_a_controller_id_scopes_the_operator_to_its_labelled_deployments(
    cluster: Cluster, api: AsyncClient, tmp_path: Path
) -> None:
    async with running_operator(cluster, tmp_path, extra_env={"CONTROLLER_ID": "team-a"}) as operator:
        mine = sdep("mine")
        mine["metadata"]["labels"] = {"seldon.io/controller-id": "team-a"}
        theirs = sdep("theirs")
        theirs["metadata"]["labels"] = {"seldon.io/controller-id": "team-b"}
        await create(api, theirs)
        await create(api, sdep("unlabelled"))
        await create(api, mine)
        await wait_for(
            lambda: ("VirtualService", "mine") in children(cluster, "mine"), 30, "mine rendered", operator
        )
        vs = children(cluster, "mine")[("VirtualService", "mine")]
        assert vs["metadata"]["labels"]["seldon.io/controller-id"] == "team-a"
        await wait_for(lambda: status(cluster, "mine").get("state"), 30, "mine's status", operator)
        assert not children(cluster, "theirs") and not status(cluster, "theirs")
        assert not children(cluster, "unlabelled") and not status(cluster, "unlabelled")


@pytest.mark.asyncio
async def test_a_restarted_operator_resumes_and_repairs_what_changed_while_it_was_down(
    cluster: Cluster, api: AsyncClient, tmp_path: Path
) -> None:
    async with running_operator(cluster, tmp_path / "first") as operator:
        await create(api, sdep())
        await wait_for(
            lambda: ("VirtualService", "iris") in children(cluster), 30, "the VirtualService", operator
        )
        await wait_for(lambda: status(cluster).get("state") == "Creating", 30, "Creating", operator)
    vs = children(cluster)[("VirtualService", "iris")]
    await api.delete(kube.resource(vs["apiVersion"], "VirtualService"), "iris", namespace=NS)
    assert ("VirtualService", "iris") not in children(cluster)
    async with running_operator(cluster, tmp_path / "second") as operator:
        await wait_for(
            lambda: ("VirtualService", "iris") in children(cluster), 30, "the VirtualService back", operator
        )
        assert status(cluster)["state"] == "Creating"
        assert operator.process.poll() is None
