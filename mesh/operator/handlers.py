"""The kopf registry: SeldonDeployment handlers and the child watches.

create/update reconcile with pruning (the spec may have dropped objects); resume (start-up) prunes only
where the spec moved since the last status. Every watch event of a child (our labels) schedules its
owner's reconcile, which puts back what was edited or deleted by hand and refreshes status; the watches'
periodic re-list resyncs what events were missed.
No finalizer: a SeldonDeployment deleted while the operator is down goes at once, its children with it.
kopf keeps its own bookkeeping in annotations (`seldon-mesh.io/*`), so `status` holds only our fields.
"""

from __future__ import annotations

from typing import Any

import kopf

from mesh.operator.kube import GROUP, PLURAL, PLURALS
from mesh.operator.reconcile import MANAGED_BY_LABEL, Reconciler
from mesh.render import DEPLOYMENT_LABEL, MANAGED_BY
from mesh.render.labels import CONTROLLER_LABEL

# kopf re-lists each watch when it reconnects (every `server_timeout`): every child then gives an event,
# which resyncs its owner; no timer (kopf would put a finalizer on each SeldonDeployment for one).
WATCH_TIMEOUT = 300


def build_registry(reconciler: Reconciler, controller_id: str) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    # Seldon's controllerId: an operator with one handles only SeldonDeployments labelled with it,
    # one without handles only those without the label.
    ours = {CONTROLLER_LABEL: controller_id} if controller_id else {CONTROLLER_LABEL: kopf.ABSENT}
    sdep: dict[str, Any] = {"group": GROUP, "plural": PLURAL, "labels": ours, "registry": registry}

    @kopf.on.create(**sdep)
    @kopf.on.update(**sdep)
    async def reconcile(body: kopf.Body, retry: int, **_: Any) -> None:
        await reconciler.reconcile_body(body, prune=True, retry=retry)

    @kopf.on.resume(**sdep)
    async def resume(body: kopf.Body, retry: int, **_: Any) -> None:
        # At start-up every SeldonDeployment resumes: prune (a list per kind) only those whose spec
        # moved since their status was written, so a restart with thousands costs one apply pass.
        generation = (body.get("metadata") or {}).get("generation")
        observed = (body.get("status") or {}).get("observedGeneration")
        await reconciler.reconcile_body(body, prune=generation != observed, retry=retry)

    children: dict[str, Any] = {DEPLOYMENT_LABEL: kopf.PRESENT, MANAGED_BY_LABEL: MANAGED_BY}
    if controller_id:
        children[CONTROLLER_LABEL] = controller_id
    for api_version, kind in PLURALS:
        group, _, version = api_version.rpartition("/")

        @kopf.on.event(group, version, PLURALS[(api_version, kind)], labels=children, registry=registry)
        async def child(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
            reconciler.child_changed(body, deleted=event.get("type") == "DELETED")

    return registry


def configure(settings: kopf.OperatorSettings) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="seldon-mesh.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="seldon-mesh.io", key="last-handled-configuration"
    )
    settings.persistence.finalizer = "seldon-mesh.io/finalizer"
    settings.posting.enabled = False  # our own events, on change only (reconcile.Reconciler._event)
    settings.watching.server_timeout = WATCH_TIMEOUT
    settings.networking.request_timeout = 30
