"""One SeldonDeployment reconciled: validate, render, server-side apply, prune, status.

Every object `mesh.render` returns is applied with server-side apply under our field manager with
`force`: we send only the fields we render, so we take back those (and only those) when someone else
changed them, and never touch what others own (`kubectl rollout restart`'s annotation, an HPA's
`replicas`, which render leaves out when autoscaled). Objects carrying our labels for this
SeldonDeployment that the spec no longer renders are deleted; on delete, the owner references let
Kubernetes collect the rest. Errors are typed for kopf's retries: an invalid spec is permanent (status
Failed with every field path, children untouched); a kind the cluster does not serve (Istio or KEDA CRDs
absent) or a Secret not there yet is temporary, retried with backoff and shown in status.

Drift repair: a child's watch event (edited, deleted, its status moved) schedules its owner's reconcile,
debounced per SeldonDeployment; events that carry the resourceVersion our own apply returned are ours
and ignored, so applying never feeds itself.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from mesh.operator import kube, status
from mesh.render import DEPLOYMENT_LABEL, MANAGED_BY, Manifest, RenderSettings, render
from mesh.spec import KIND, SeldonDeployment, SpecError, parse_deployment

log = logging.getLogger("seldon-mesh.operator")
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
DEBOUNCE = 0.3  # seconds: a burst of child events (a rollout) gives one reconcile


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def backoff(retry: int) -> float:
    """kopf's retry delay: 5 s doubling, at most 5 minutes."""
    return float(min(300, 5 * 2 ** min(retry, 6)))


@dataclass(frozen=True)
class Trigger:
    """One watch event of a child."""

    body: dict[str, Any]
    deleted: bool

    @property
    def meta(self) -> dict[str, Any]:
        return self.body.get("metadata") or {}

    def key(self, namespace: str) -> tuple[str, str, str]:
        return namespace, str(self.body.get("kind", "")), str(self.meta.get("name", ""))


class Reconciler:
    def __init__(self, api: AsyncClient, settings: RenderSettings, field_manager: str) -> None:
        self.api = api
        self.settings = settings
        self.field_manager = field_manager
        # resourceVersions our own writes returned, per child: their watch events are echoes
        self._ours: dict[tuple[str, str, str], str] = {}
        self._pending: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._triggers: dict[tuple[str, str], list[Trigger]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._running: set[asyncio.Task[None]] = set()  # every scheduled reconcile, until it ends
        # per child, what our last apply rendered and the generation it got back: a Deployment event
        # with that generation and those labels and annotations is a status move only
        self._applied: dict[tuple[str, str, str], tuple[int | None, dict[str, Any]]] = {}
        # per SeldonDeployment, what its last reconcile observed (status-only refreshes start from it)
        self._observed: dict[tuple[str, str], status.Observed] = {}

    # -- entry points -------------------------------------------------------------------------

    async def reconcile_body(self, body: Mapping[str, Any], *, prune: bool, retry: int = 0) -> str:
        """Reconcile one SeldonDeployment as the API returned it; returns its state. One at a time per
        SeldonDeployment; the status compared with is re-read, as another reconcile may have moved it."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        async with self._locks.setdefault(key, asyncio.Lock()):
            try:
                current = kube.as_dict(await self.api.get(kube.seldon_deployment(), key[1], namespace=key[0]))
            except ApiError as error:
                if kube.is_not_found(error):
                    return "Deleted"
                raise
            return await self._reconcile(body, current.get("status"), prune=prune, retry=retry)

    async def _reconcile(
        self, body: Mapping[str, Any], current_status: Any, *, prune: bool, retry: int
    ) -> str:
        raw = copy.deepcopy(dict(body))
        meta = raw.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return "Deleting"
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        generation = meta.get("generation")
        old_status = current_status if isinstance(current_status, Mapping) else None
        try:
            deployment = parse_deployment(raw)
        except SpecError as error:
            paths = [str(e) for e in error.errors]
            await self._write_status(raw, old_status, status.invalid(paths, generation))
            raise kopf.PermanentError(str(error)) from error
        manifests = render(deployment, self.settings)
        observed = status.Observed()
        missing_secrets = await self._missing_secrets(namespace, manifests)
        if missing_secrets:
            message = "waiting for " + ", ".join(f"Secret {s}" for s in missing_secrets)
            observed.problems.append(status.Problem("DeploymentsReady", "MissingSecret", message))
            await self._observe(namespace, manifests, observed)
            await self._finish(raw, deployment, generation, manifests, observed, old_status)
            raise kopf.TemporaryError(message, delay=backoff(retry))
        unserved = await self._apply_all(namespace, manifests, observed)
        if prune:
            await self._prune(namespace, name, str(meta.get("uid") or ""), manifests)
        state = await self._finish(raw, deployment, generation, manifests, observed, old_status)
        if unserved:
            raise kopf.TemporaryError(
                "the cluster does not serve " + ", ".join(unserved) + " (CRD not installed?)",
                delay=backoff(retry),
            )
        return state

    async def reconcile(self, namespace: str, name: str, *, prune: bool) -> None:
        """Fetch and reconcile (drift repair); a SeldonDeployment gone (or going) is left alone."""
        async with self._locks.setdefault((namespace, name), asyncio.Lock()):
            try:
                body = kube.as_dict(await self.api.get(kube.seldon_deployment(), name, namespace=namespace))
            except ApiError as error:
                if kube.is_not_found(error):
                    self._observed.pop((namespace, name), None)
                    return
                raise
            try:
                await self._reconcile(body, body.get("status"), prune=prune, retry=0)
            except (kopf.PermanentError, kopf.TemporaryError) as error:
                log.info("SeldonDeployment %s/%s: %s", namespace, name, error)

    def child_changed(self, child: Mapping[str, Any], deleted: bool) -> None:
        """A watch event of one of our children: schedule its owner's reconcile (debounced). Events
        whose resourceVersion our own apply returned are echoes, dropped when the debounce ends (the
        event may arrive before the apply's response does); a Deployment's status move only refreshes
        status (no apply); anything else (deleted, edited) is a full reconcile, which puts it back."""
        meta = child.get("metadata") or {}
        owner = owner_name(child)
        if not owner:
            return
        namespace = str(meta.get("namespace", ""))
        key = (namespace, owner)
        self._triggers.setdefault(key, []).append(Trigger(copy.deepcopy(dict(child)), deleted))
        if key not in self._pending or self._pending[key].done():
            task = asyncio.create_task(self._later(namespace, owner))
            self._pending[key] = task
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    def _echo(self, namespace: str, trigger: Trigger) -> bool:
        version = trigger.meta.get("resourceVersion")
        return (
            not trigger.deleted and bool(version) and self._ours.get(trigger.key(namespace)) == str(version)
        )

    def _status_only(self, namespace: str, trigger: Trigger) -> bool:
        if trigger.deleted or trigger.body.get("kind") != "Deployment":
            return False
        applied = self._applied.get(trigger.key(namespace))
        if applied is None or applied[0] is None or trigger.meta.get("generation") != applied[0]:
            return False
        rendered = applied[1]
        for field in ("labels", "annotations"):
            live = trigger.meta.get(field) or {}
            if any(live.get(k) != v for k, v in (rendered.get(field) or {}).items()):
                return False
        return True

    async def _later(self, namespace: str, name: str) -> None:
        await asyncio.sleep(DEBOUNCE)
        self._pending.pop((namespace, name), None)
        triggers = [t for t in self._triggers.pop((namespace, name), []) if not self._echo(namespace, t)]
        if not triggers:
            return
        try:
            if (namespace, name) in self._observed and all(self._status_only(namespace, t) for t in triggers):
                log.debug(
                    "SeldonDeployment %s/%s: status refresh after Deployment status moves", namespace, name
                )
                await self.refresh_status(namespace, name, triggers)
            else:
                await self.reconcile(namespace, name, prune=False)
        except Exception:  # a failed drift repair is retried by the next event or watch re-list
            log.exception("reconciling SeldonDeployment %s/%s after a child event", namespace, name)

    async def refresh_status(self, namespace: str, name: str, triggers: Sequence[Trigger]) -> None:
        """Status from the last reconcile's observations updated with these children's new states."""
        async with self._locks.setdefault((namespace, name), asyncio.Lock()):
            try:
                body = kube.as_dict(await self.api.get(kube.seldon_deployment(), name, namespace=namespace))
            except ApiError as error:
                if kube.is_not_found(error):
                    self._observed.pop((namespace, name), None)
                    return
                raise
            previous = self._observed.get((namespace, name))
            if previous is None or (body.get("metadata") or {}).get("deletionTimestamp"):
                return
            try:
                deployment = parse_deployment(body)
            except SpecError:
                return  # its status already says Failed
            observed = status.Observed(dict(previous.live), list(previous.problems))
            for trigger in triggers:
                observed.live[(str(trigger.body["kind"]), str(trigger.meta.get("name")))] = trigger.body
            self._observed[(namespace, name)] = observed
            manifests = render(deployment, self.settings)
            generation = (body.get("metadata") or {}).get("generation")
            await self._finish(body, deployment, generation, manifests, observed, body.get("status"))

    async def close(self) -> None:
        """Cancel the scheduled reconciles and wait for them (before the API client closes)."""
        tasks = list(self._running)
        self._pending.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- steps -----------------------------------------------------------------------------------

    async def _apply_all(
        self, namespace: str, manifests: Sequence[Manifest], observed: status.Observed
    ) -> list[str]:
        unserved: list[str] = []
        for manifest in manifests:
            kind, name = status.key(manifest)
            resource = kube.manifest_resource(manifest)
            try:
                live = kube.as_dict(
                    await self.api.apply(resource(manifest), field_manager=self.field_manager, force=True)
                )
            except ApiError as error:
                observed.live[(kind, name)] = None
                condition = _condition_of(kind)
                if kube.is_not_found(error):
                    what = f"{manifest['apiVersion']} {kind}"
                    if what not in unserved:
                        unserved.append(what)
                    observed.problems.append(
                        status.Problem(condition, "KindNotServed", f"the cluster does not serve {what}")
                    )
                else:
                    observed.problems.append(
                        status.Problem(condition, "ApplyFailed", f"{kind} {name}: {error}")
                    )
                continue
            observed.live[(kind, name)] = live
            live_meta = live.get("metadata") or {}
            if live_meta.get("resourceVersion"):
                self._ours[(namespace, kind, name)] = str(live_meta["resourceVersion"])
            self._applied[(namespace, kind, name)] = (
                live_meta.get("generation"),
                manifest.get("metadata") or {},
            )
        return unserved

    async def _observe(
        self, namespace: str, manifests: Sequence[Manifest], observed: status.Observed
    ) -> None:
        for manifest in manifests:
            kind, name = status.key(manifest)
            try:
                live = await self.api.get(kube.manifest_resource(manifest), name, namespace=namespace)
                observed.live[(kind, name)] = kube.as_dict(live)
            except ApiError:
                observed.live[(kind, name)] = None

    async def _prune(self, namespace: str, name: str, uid: str, manifests: Sequence[Manifest]) -> None:
        """Delete what we rendered for this SeldonDeployment before and render no more."""
        wanted = {(m["apiVersion"], m["kind"], m["metadata"]["name"]) for m in manifests}
        labels: dict[str, Any] = {DEPLOYMENT_LABEL: name_label(manifests, name), MANAGED_BY_LABEL: MANAGED_BY}
        for api_version, kind in kube.PLURALS:
            resource = kube.resource(api_version, kind)
            try:
                found = [
                    kube.as_dict(o) async for o in self.api.list(resource, namespace=namespace, labels=labels)
                ]
            except ApiError as error:
                if kube.is_not_found(error):  # a kind this cluster does not serve holds nothing of ours
                    continue
                raise
            for obj in found:
                meta = obj.get("metadata") or {}
                obj_labels = meta.get("labels") or {}
                if any(obj_labels.get(k) != v for k, v in labels.items()):
                    continue  # the server ignored the selector; check it here too
                if uid and not any(ref.get("uid") == uid for ref in meta.get("ownerReferences") or []):
                    continue  # same labels, but not owned by this SeldonDeployment: not ours to delete
                if (api_version, kind, meta.get("name")) in wanted:
                    continue
                log.info(
                    "SeldonDeployment %s/%s no longer renders %s %s: deleting",
                    namespace,
                    name,
                    kind,
                    meta.get("name"),
                )
                try:
                    await self.api.delete(resource, str(meta["name"]), namespace=namespace)
                except ApiError as error:
                    if not kube.is_not_found(error):
                        raise

    async def _missing_secrets(self, namespace: str, manifests: Sequence[Manifest]) -> list[str]:
        missing: list[str] = []
        for secret_name in sorted(required_secrets(manifests)):
            try:
                await self.api.get(kube.secret(), secret_name, namespace=namespace)
            except ApiError as error:
                if kube.is_not_found(error):
                    missing.append(secret_name)
                elif kube.status_code(error) == 403:
                    return []  # not allowed to read Secrets here: let the kubelet tell
                else:
                    raise
        return missing

    async def _finish(
        self,
        raw: Mapping[str, Any],
        deployment: SeldonDeployment,
        generation: int | None,
        manifests: Sequence[Manifest],
        observed: status.Observed,
        old_status: Mapping[str, Any] | None,
    ) -> str:
        meta = raw.get("metadata") or {}
        self._observed[(str(meta.get("namespace", "")), str(meta.get("name", "")))] = observed
        new = status.compute(deployment, generation, manifests, observed, self.settings.cluster_domain)
        await self._write_status(raw, old_status, new)
        return str(new["state"])

    async def _write_status(
        self, raw: Mapping[str, Any], old: Mapping[str, Any] | None, new: dict[str, Any]
    ) -> None:
        patch, changes = status.merge(old, new, now())
        if status.same(old, patch):
            return
        meta = raw.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        try:
            await self.api.patch(
                kube.seldon_deployment().Status,
                name,
                {"status": patch},
                namespace=namespace,
                patch_type=PatchType.MERGE,
            )
        except ApiError as error:
            if kube.is_not_found(error):
                return
            raise
        if changes:
            failed = new.get("state") == status.FAILED
            await self._event(
                raw, "Warning" if failed else "Normal", str(new["state"]), _event_message(new, changes)
            )

    async def _event(self, raw: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        """A Kubernetes event on the SeldonDeployment (best effort: never fails a reconcile)."""
        meta = raw.get("metadata") or {}
        stamp = now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta.get('name')}.{uuid.uuid4().hex[:16]}",
                "namespace": meta.get("namespace"),
            },
            "involvedObject": {
                "apiVersion": raw.get("apiVersion", f"{kube.GROUP}/v1"),
                "kind": KIND,
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self.field_manager},
            "reportingComponent": self.field_manager,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self.api.create(kube.event()(event))
        except ApiError as error:
            log.warning(
                "could not post an event on %s/%s: %s", meta.get("namespace"), meta.get("name"), error
            )


def _condition_of(kind: str) -> str:
    if kind in kube.INGRESS_KINDS:
        return "IngressReady"
    if kind == "Service":
        return "ServicesReady"
    return "DeploymentsReady"


def _event_message(new: Mapping[str, Any], changes: Sequence[str]) -> str:
    text = ", ".join(changes)
    description = new.get("description")
    return f"{text}: {description}" if description else text


def owner_name(child: Mapping[str, Any]) -> str:
    """The SeldonDeployment that owns a child: its controller owner reference, else our label."""
    meta = child.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == KIND and str(ref.get("apiVersion", "")).startswith(kube.GROUP + "/"):
            return str(ref.get("name", ""))
    return str((meta.get("labels") or {}).get(DEPLOYMENT_LABEL, ""))


def name_label(manifests: Sequence[Manifest], name: str) -> str:
    """The `seldon-deployment-id` value rendered for this deployment (a long name is shortened)."""
    for manifest in manifests:
        value = ((manifest.get("metadata") or {}).get("labels") or {}).get(DEPLOYMENT_LABEL)
        if value:
            return str(value)
    return name


def required_secrets(manifests: Sequence[Manifest]) -> set[str]:
    """Secrets the rendered pods cannot start without (non-optional envFrom, env, volumes)."""
    names: set[str] = set()
    for manifest in manifests:
        if manifest.get("kind") != "Deployment":
            continue
        pod = ((manifest.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
            for source in container.get("envFrom") or []:
                ref = source.get("secretRef")
                if ref and ref.get("name") and not ref.get("optional"):
                    names.add(str(ref["name"]))
            for env in container.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref and ref.get("name") and not ref.get("optional"):
                    names.add(str(ref["name"]))
        for volume in pod.get("volumes") or []:
            ref = volume.get("secret")
            if ref and ref.get("secretName") and not ref.get("optional"):
                names.add(str(ref["secretName"]))
    return names
