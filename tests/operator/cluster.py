"""A Kubernetes API on loopback for the operator's tests: kmock's KubernetesEmulator plus the few API
server behaviours the operator relies on that the emulator leaves out, and `seldon-mesh operator` run
against it as a subprocess (KUBECONFIG pointing at the emulator).

What `Cluster` adds to the emulator (each is what a real API server does; none is operator logic):
- metadata the server assigns: `uid`, `creationTimestamp`, `generation` (1, then +1 on each write that
  changes `spec`), a `resourceVersion` that moves on every write;
- server-side apply of an object that does not exist yet creates it (the emulator answers 404);
- a PATCH of the `status` subresource changes only `status`;
- the garbage collector: an object whose ownerReferences name no live uid is deleted (after each write);
- writes of a kind not declared (a CRD not installed) are 404, as lists of it already are;
- errors as `application/json` (the emulator adds `; charset=utf-8`, which lightkube does not parse).
Label selectors are not applied by the emulator (lists return every object); the operator checks labels
on what it lists, so this is left as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import itertools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import httpx
import kmock
import yaml
from kmock._internal import dicts, enums, rendering
from kmock._internal.k8s import KubernetesResourceNotFoundError

from tests.helpers.ports import free_port

REPO = Path(__file__).resolve().parents[2]
APPLY = "application/apply-patch+yaml"

# What the operator reads and writes, as the cluster's discovery would list it.
RESOURCES: dict[str, tuple[str, set[str]]] = {
    "machinelearning.seldon.io/v1/seldondeployments": ("SeldonDeployment", {"status"}),
    "apps/v1/deployments": ("Deployment", {"status"}),
    "v1/services": ("Service", {"status"}),
    "v1/configmaps": ("ConfigMap", set()),
    "v1/secrets": ("Secret", set()),
    "v1/events": ("Event", set()),
    "v1/namespaces": ("Namespace", set()),  # kopf's backbone: it waits for these two to be served
    "apiextensions.k8s.io/v1/customresourcedefinitions": ("CustomResourceDefinition", set()),
    "autoscaling/v2/horizontalpodautoscalers": ("HorizontalPodAutoscaler", {"status"}),
    "policy/v1/poddisruptionbudgets": ("PodDisruptionBudget", {"status"}),
    "networking.istio.io/v1/virtualservices": ("VirtualService", {"status"}),
    "networking.istio.io/v1/destinationrules": ("DestinationRule", {"status"}),
    "admissionregistration.k8s.io/v1/validatingwebhookconfigurations": (
        "ValidatingWebhookConfiguration",
        set(),
    ),
    "admissionregistration.k8s.io/v1/mutatingwebhookconfigurations": ("MutatingWebhookConfiguration", set()),
}
CLUSTER_SCOPED = {
    "validatingwebhookconfigurations",
    "mutatingwebhookconfigurations",
    "namespaces",
    "customresourcedefinitions",
}


@attrs.define(kw_only=True)
class Cluster(kmock.KubernetesEmulator):
    _versions: Any = attrs.field(factory=lambda: itertools.count(1), init=False)

    def declare(self) -> None:
        for path, (kind, subresources) in RESOURCES.items():
            namespaced = path.rsplit("/", 1)[1] not in CLUSTER_SCOPED
            self.resources[path] = kmock.ResourceInfo(
                namespaced=namespaced,
                kind=kind,
                subresources=subresources,
                verbs={"get", "list", "watch", "create", "patch", "update", "delete"},
            )

    def find(self, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        for (resource, ns, n), obj in self.objects.items():
            if resource.plural == plural and ns == namespace and n == name and not obj.deleted:
                return copy.deepcopy(obj.raw)
        return None

    def existing(self, plural: str, namespace: str | None, name: str) -> dict[str, Any]:
        """`find` for an object the test knows is there: a missing one fails the test here, by name."""
        found = self.find(plural, namespace, name)
        assert found is not None, f"no {plural} {namespace}/{name} in the cluster"
        return found

    def all(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(obj.raw)
            for (resource, ns, _), obj in self.objects.items()
            if resource.plural == plural and (namespace is None or ns == namespace) and not obj.deleted
        ]

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if request.resource is None or not isinstance(request.data, dict):
            return await super()._handle(request)
        if request.action in (enums.action.CREATE, enums.action.UPDATE) and request.resource not in set(
            self._resources
        ):
            raise KubernetesResourceNotFoundError()  # a kind the cluster does not serve (CRD absent)
        data: dict[str, Any] = request.data
        meta = (
            data.setdefault("metadata", {})
            if request.action in (enums.action.CREATE, enums.action.UPDATE)
            else {}
        )
        if request.action == enums.action.CREATE:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta["creationTimestamp"] = _now()
            meta["generation"] = 1
            meta["resourceVersion"] = str(next(self._versions))
        elif request.action == enums.action.UPDATE:
            key = (request.resource, request.namespace, request.name)
            async with self._lock:
                current = self.objects[key] if key in self.objects else None  # noqa: SIM401 (no .get)
                missing = current is None or current.deleted
                if missing and request.headers.get("Content-Type", "").startswith(APPLY):
                    created = copy.deepcopy(data)
                    created["metadata"].update(
                        uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1,
                        resourceVersion=str(next(self._versions)),
                    )  # fmt: skip
                    self.objects[key] = created
                    await self._buses[request.resource].put(
                        {"type": "ADDED", "object": copy.deepcopy(created)}
                    )
                    current = self.objects[key]
                if current is not None and not current.deleted:
                    old = copy.deepcopy(current.raw)
                    if request.subresource == "status":
                        for field in list(data):
                            if field not in ("status", "metadata"):
                                del data[field]
                        data["metadata"] = {}
                    else:
                        data.pop("status", None) if request.resource.plural == "seldondeployments" else None
                    new = dicts.patch_dict(copy.deepcopy(old), copy.deepcopy(data))
                    data["metadata"]["resourceVersion"] = str(next(self._versions))
                    if request.subresource is None and new.get("spec") != old.get("spec"):
                        data["metadata"]["generation"] = int(old["metadata"].get("generation") or 1) + 1
        response = await super()._handle(request)
        if request.action in (enums.action.DELETE, enums.action.CREATE, enums.action.UPDATE):
            await self._collect_garbage()
        return response

    async def _collect_garbage(self) -> None:
        """Delete objects whose owners are gone (deleted, or never there), as the garbage collector does."""
        while True:
            async with self._lock:
                alive = {obj.raw["metadata"].get("uid") for obj in self.objects.values() if not obj.deleted}
                orphans = [
                    (key, obj)
                    for key, obj in self.objects.items()
                    if not obj.deleted
                    and (refs := obj.raw["metadata"].get("ownerReferences"))
                    and not any(ref.get("uid") in alive for ref in refs)
                ]
                for (resource, _, _), obj in orphans:
                    raw = copy.deepcopy(obj.raw)
                    obj.delete()
                    await self._buses[resource].put({"type": "DELETED", "object": raw})
            if not orphans:
                return

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        response = await super()._render_error(exc)
        assert isinstance(response, aiohttp.web.Response)
        response.charset = None  # lightkube recognises API errors by an exact application/json
        return response


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def kubeconfig(server: str, path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emulator", "cluster": {"server": server}}],
                "users": [{"name": "nobody", "user": {}}],
                "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "nobody"}}],
                "current-context": "emulator",
            }
        )
    )
    return path


@dataclass
class Operator:
    process: subprocess.Popen[bytes]
    log_path: Path
    health_port: int

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _spawn(command: Sequence[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)


def _prepare(cluster: Cluster, workdir: Path, settings: dict[str, Any] | None) -> tuple[Path, Path]:
    cluster.declare()
    workdir.mkdir(parents=True, exist_ok=True)
    config = kubeconfig(str(cluster.url), workdir / "kubeconfig")
    settings_path = workdir / "settings.yaml"
    settings_path.write_text(yaml.safe_dump(settings or {}))
    return config, settings_path


@contextlib.asynccontextmanager
async def running_operator(
    cluster: Cluster,
    workdir: Path,
    args: Sequence[str] = (),
    settings: dict[str, Any] | None = None,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[Operator]:
    """`seldon-mesh operator` against the emulator, until its liveness endpoint answers."""
    config, settings_path = _prepare(cluster, workdir, settings)
    health_port = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(config),
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
        "WATCH_NAMESPACE": "",
        "POD_NAMESPACE": "seldon-system",
        "LOG_LEVEL": os.environ.get("OPERATOR_LOG_LEVEL", "INFO"),
        **(extra_env or {}),
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    log_path = workdir / "operator.log"
    command = [
        sys.executable, "-m", "mesh.operator", "--settings", str(settings_path),
        "--health-host", "127.0.0.1", "--health-port", str(health_port), *args,
    ]  # fmt: skip
    process = _spawn(command, env, log_path)
    operator = Operator(process, log_path, health_port)
    try:
        async with httpx.AsyncClient(timeout=2) as client:

            async def live() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"operator exited {process.returncode}\n{operator.log()}")
                try:
                    return (await client.get(f"http://127.0.0.1:{health_port}/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(live, 60, "the operator's liveness endpoint", operator)
        yield operator
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 15)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 5)


async def wait_for(
    condition: Callable[[], Any], within: float, what: str, operator: Operator | None = None
) -> Any:
    """Await `condition()` (sync or async) until it is truthy, for at most `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            tail = "\n" + operator.log()[-6000:] if operator else ""
            raise AssertionError(f"timed out after {within}s waiting for {what}{tail}")
        await asyncio.sleep(0.05)
