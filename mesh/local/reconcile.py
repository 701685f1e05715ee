"""The reconcile loop: what the store says should run becomes processes, then an xDS snapshot for Envoy.

Order matters for "make before break": new components are started, the new snapshot is published, and only
once Envoy has applied a config without them (and extproc had time to read its graph file) are the
processes nothing routes to any more stopped; a runtime stopped with SIGTERM finishes what is in flight.
Status per deployment is derived here from the supervisor's component states and from whether Envoy
accepted the config that carries the deployment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from mesh.local.plan import ComponentPlan, plan_deployment
from mesh.local.store import StateStore, StoredDeployment
from mesh.local.supervisor import ComponentState, ComponentStatus, RuntimeProcess, Supervisor
from mesh.spec import SeldonDeployment
from xds_controller.snapshot import Snapshot
from xds_controller.translate import ComponentEndpoints, ComponentKey, GatewaySettings, Resources

log = logging.getLogger(__name__)

Translate = Callable[
    [Sequence[SeldonDeployment], Mapping[ComponentKey, ComponentEndpoints], GatewaySettings], Resources
]
DeploymentKey = tuple[str, str]


@dataclass(frozen=True)
class Change:
    """What differs from the deployments of the last render: upserted deployments and removed keys."""

    changed: Sequence[SeldonDeployment]
    removed: Sequence[DeploymentKey]


# Deployments and where their components listen -> the gateway's snapshot (see `app`: an incremental
# `SnapshotBuilder`). With a `Change`, only endpoints of the changed deployments moved, so a renderer may
# look at those alone; without one (endpoints anywhere may have moved), it looks at every deployment.
Render = Callable[
    [Sequence[SeldonDeployment], Mapping[ComponentKey, ComponentEndpoints], Change | None], Snapshot
]
HISTORY = 64  # published configs remembered to tell which one Envoy serves after a rejection
# How long a retired process waits for Envoy to apply the config without it before it is stopped anyway
# (Envoy not started yet, or gone), and then how long it keeps serving: extproc re-reads its graph file
# every 0.2 s, and an Envoy worker may still hold a request it picked the old endpoint for.
RETIRE_WAIT_S = 10.0
DRAIN_S = 1.0


class ConfigState(StrEnum):
    PENDING = "Pending"
    APPLIED = "Applied"
    REJECTED = "Rejected"


class ConfigPublisher(Protocol):
    """Hands snapshots to the xDS cache and reports what Envoy did with them."""

    def publish(self, snapshot: Snapshot) -> str:
        """Publish; returns an id of the published config (equal content gives an equal id)."""
        ...

    def state(self, config_id: str) -> tuple[ConfigState, str]:
        """The state of a published config and, when rejected, Envoy's message."""
        ...


@dataclass(frozen=True)
class DeploymentStatus:
    state: str  # Creating | Available | Failed, as in SeldonDeployment status
    description: str
    components: Mapping[ComponentKey, ComponentStatus]
    config: ConfigState
    generation: int


class Reconciler:
    def __init__(
        self,
        store: StateStore,
        supervisor: Supervisor,
        publisher: ConfigPublisher,
        render: Render,
        workers: int = 1,
    ) -> None:
        self._store = store
        self._supervisor = supervisor
        self._publisher = publisher
        self._render = render
        self._workers = workers
        self._deployments: list[StoredDeployment] = []
        self._by_key: dict[DeploymentKey, StoredDeployment] = {}
        self._plans: dict[DeploymentKey, list[ComponentPlan]] = {}
        # the generation Envoy is told to route per deployment, and its plans (see `_advance`)
        self._serving: dict[DeploymentKey, StoredDeployment] = {}
        self._serving_plans: dict[DeploymentKey, list[ComponentPlan]] = {}
        self._config_id = ""
        # recent published configs, oldest first, with the generation of each deployment they carry
        self._history: dict[str, dict[DeploymentKey, int]] = {}
        self._lock = asyncio.Lock()
        self._retirements: set[asyncio.Task[None]] = set()

    async def reconcile(self) -> None:
        """Bring processes and Envoy config in line with the store."""
        async with self._lock:
            self._deployments = self._store.list()
            secrets = self._store.secrets()  # for envSecretRefName
            self._by_key = {s.deployment.key: s for s in self._deployments}
            self._plans = {
                s.deployment.key: plan_deployment(s.deployment, s.base_dir, self._workers, secrets)
                for s in self._deployments
            }
            previous = self._advance()
            self._supervisor.apply(self._wanted_plans())
            self._publish(
                Change(
                    changed=[
                        s.deployment
                        for key, s in self._serving.items()
                        if key not in previous or not _same(previous[key], s)
                    ],
                    removed=[key for key in previous if key not in self._serving],
                )
            )

    def refresh(self) -> None:
        """Component states changed: re-publish endpoints (a no-op for Envoy when nothing differs), and
        route a held-back generation once what it adds is ready."""
        previous = self._advance()
        if any(not _same(previous.get(key), s) for key, s in self._serving.items()):
            self._supervisor.apply(self._wanted_plans())  # the old generation's leftovers retire
        self._publish(None)

    def _advance(self) -> dict[DeploymentKey, StoredDeployment]:
        """Pick the generation Envoy routes for each deployment: the newest, once every component it
        adds (a new predictor, a new graph node) has endpoints; until then the one before keeps its
        routes, so no request is sent to a cluster with nothing behind it. Returns the previous pick."""
        previous, self._serving = self._serving, {}
        endpoints = self._supervisor.endpoints()
        for key, stored in self._by_key.items():
            before = previous.get(key)
            if before is not None and before is not stored and before.deployment != stored.deployment:
                routed = {plan.key for plan in self._serving_plans.get(key, [])}
                added = [p.key for p in self._plans[key] if p.key not in routed]
                if not all(k in endpoints for k in added):
                    self._serving[key] = before
                    continue
            self._serving[key] = stored
            self._serving_plans[key] = self._plans[key]
        for key in [k for k in self._serving_plans if k not in self._serving]:
            del self._serving_plans[key]
        return previous

    def _wanted_plans(self) -> list[ComponentPlan]:
        """Every component of the newest generations, and of the generations still routed the
        components the newest ones dropped (they serve until the routes move)."""
        plans = {plan.key: plan for key in self._by_key for plan in self._plans[key]}
        for routed in self._serving_plans.values():
            for plan in routed:
                plans.setdefault(plan.key, plan)
        return list(plans.values())

    def _publish(self, change: Change | None) -> None:
        deployments = [s.deployment for s in self._serving.values()]
        snapshot = self._render(deployments, self._supervisor.endpoints(), change)
        self._config_id = self._publisher.publish(snapshot)
        self._history.pop(self._config_id, None)
        self._history[self._config_id] = {key: s.generation for key, s in self._serving.items()}
        while len(self._history) > HISTORY:
            del self._history[next(iter(self._history))]
        retiring = self._supervisor.take_retiring()
        if retiring:
            task = asyncio.get_running_loop().create_task(self._retire(retiring, self._config_id))
            self._retirements.add(task)
            task.add_done_callback(self._retirements.discard)

    async def _retire(self, processes: Sequence[RuntimeProcess], config_id: str) -> None:
        """Stop `processes` once Envoy applied `config_id` (or a later config: none routes to them)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RETIRE_WAIT_S
        # the publisher is asked, not told (its ACKs arrive on the xDS streams)
        while not self._applied_since(config_id) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(DRAIN_S)
        await self._supervisor.retire(processes)

    def _applied_since(self, config_id: str) -> bool:
        ids = list(self._history)
        if config_id not in ids:
            return True  # forgotten: many configs were published since
        later = ids[ids.index(config_id) :]
        return any(self._publisher.state(c)[0] is ConfigState.APPLIED for c in later)

    async def close(self) -> None:
        """Stop waiting to retire processes (the supervisor stops them with everything else)."""
        for task in list(self._retirements):
            task.cancel()
        await asyncio.gather(*self._retirements, return_exceptions=True)

    def _serving_generation(self, key: DeploymentKey) -> int | None:
        """The generation of `key` in the newest config Envoy applied: what it serves now."""
        for config_id in reversed(self._history):
            if self._publisher.state(config_id)[0] is ConfigState.APPLIED:
                return self._history[config_id].get(key)
        return None

    def status(self, key: DeploymentKey) -> DeploymentStatus | None:
        stored = self._by_key.get(key)
        if stored is None:
            return None
        components = {
            plan.key: self._supervisor.status(plan.key) or ComponentStatus(ComponentState.STARTING)
            for plan in self._plans.get(key, [])
        }
        config, message = self._publisher.state(self._config_id)
        if config is not ConfigState.APPLIED and self._serving_generation(key) == stored.generation:
            config = ConfigState.APPLIED  # unchanged in what Envoy serves (a rejection was someone else's)
        state, description = _summarise(components, config, message)
        return DeploymentStatus(state, description, components, config, stored.generation)

    @property
    def deployments(self) -> list[StoredDeployment]:
        return list(self._deployments)


def _same(a: StoredDeployment | None, b: StoredDeployment) -> bool:
    """The same generation of the same spec (a deployment deleted and applied again is not)."""
    return a is not None and a.generation == b.generation and a.deployment == b.deployment


def _summarise(
    components: Mapping[ComponentKey, ComponentStatus], config: ConfigState, message: str
) -> tuple[str, str]:
    failed = [(k, s) for k, s in components.items() if s.state in (ComponentState.FAILED,)]
    if failed:
        key, status = failed[0]
        return "Failed", f"{key.predictor}/{key.node}: {status.reason}"
    if config is ConfigState.REJECTED:
        return "Failed", f"Envoy rejected the config (the last good config keeps serving): {message}"
    waiting = [(k, s) for k, s in components.items() if not s.serving]
    if waiting:
        key, status = waiting[0]
        detail = f" ({status.reason})" if status.reason else ""
        return "Creating", f"{key.predictor}/{key.node} is {status.state}{detail}"
    if config is ConfigState.PENDING:
        return "Creating", "waiting for Envoy to apply the config"
    return "Available", ""
