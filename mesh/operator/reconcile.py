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


class Reconciler:
    def __init__(self, api: AsyncClient, settings: RenderSettings, field_manager: str) -> None:
        self.api = api
        self.settings = settings
        self.field_manager = field_manager
        # resourceVersions our own writes returned, per child: their watch events are echoes
        self._ours: dict[tuple[str, str, str], str] = {}
        self._pending: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._triggers: dict[tuple[str, str], list[tuple[str, str, str, bool]]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

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
                    return
                raise
            try:
                await self._reconcile(body, body.get("status"), prune=prune, retry=0)
            except (kopf.PermanentError, kopf.TemporaryError) as error:
                log.info("SeldonDeployment %s/%s: %s", namespace, name, error)

    def child_changed(self, child: Mapping[str, Any], deleted: bool) -> None:
        """A watch event of one of our children: schedule its owner's reconcile (debounced). Events
        whose resourceVersion our own apply returned are echoes, dropped when the debounce ends (the
        event may arrive before the apply's response does)."""
        meta = child.get("metadata") or {}
        owner = owner_name(child)
        if not owner:
            return
        namespace = str(meta.get("namespace", ""))
        trigger = (
            str(child.get("kind", "")),
            str(meta.get("name", "")),
            str(meta.get("resourceVersion") or ""),
        )
        key = (namespace, owner)
        self._triggers.setdefault(key, []).append((*trigger, deleted))
        if key not in self._pending or self._pending[key].done():
            self._pending[key] = asyncio.create_task(self._later(namespace, owner))

    def _echoes(self, namespace: str, triggers: Sequence[tuple[str, str, str, bool]]) -> bool:
        return all(
            not deleted and version and self._ours.get((namespace, kind, name)) == version
            for kind, name, version, deleted in triggers
        )

    async def _later(self, namespace: str, name: str) -> None:
        await asyncio.sleep(DEBOUNCE)
        self._pending.pop((namespace, name), None)
        triggers = self._triggers.pop((namespace, name), [])
        if self._echoes(namespace, triggers):
            return
        try:
            await self.reconcile(namespace, name, prune=False)
        except Exception:  # a failed drift repair is retried by the next event or watch re-list
            log.exception("reconciling SeldonDeployment %s/%s after a child event", namespace, name)

    async def close(self) -> None:
        for task in list(self._pending.values()):
            task.cancel()
        self._pending.clear()

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
            version = (live.get("metadata") or {}).get("resourceVersion")
            if version:
                self._ours[(namespace, kind, name)] = str(version)
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
