"""The process supervisor: `replicas` runtime processes per component, restarted, watched for readiness.

It owns processes and nothing else: it does not know about Envoy or specs beyond `ComponentPlan`. Whenever a
component's observable state changes it calls `on_change`, and the reconciler decides what to push.

Make before break: a component whose launch changed (a new model, new parameters) keeps its running
replicas serving while the new ones start; once every new replica is ready, the new ones become the
component's endpoints and the old ones are handed to the reconciler (`take_retiring`), which stops them
only after Envoy applied the config without them. A new version that never gets ready leaves the old one
serving, and the component's status says Failed with the reason. One process's life (ports, probes,
restarts) is `runtime_process`'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

from mesh.local.plan import ComponentPlan, RuntimeLaunch
from mesh.local.runtime_process import (
    ComponentState,
    ComponentStatus,
    Restart,
    RuntimeProcess,
    SupervisorSettings,
    free_port,
    free_ports,
)
from xds_controller.translate import ComponentEndpoints, ComponentKey

__all__ = [
    "Component",
    "ComponentState",
    "ComponentStatus",
    "Restart",
    "RuntimeProcess",
    "Supervisor",
    "SupervisorSettings",
    "free_port",
    "free_ports",
]

log = logging.getLogger(__name__)


def _aggregate(replicas: Sequence[RuntimeProcess]) -> ComponentStatus:
    """One status for a component's replicas: the first that is not Ready speaks for all, restarts add up
    (the latest one says why), and the endpoints are where each replica listens."""
    states = [r.status for r in replicas]
    worst = next((s for s in states if s.state is not ComponentState.READY), states[0])
    restarts = [s.last_restart for s in states if s.last_restart is not None]
    return replace(
        worst,
        restarts=sum(s.restarts for s in states),
        last_restart=max(restarts, key=lambda r: r.at) if restarts else None,
        endpoints=ComponentEndpoints(
            http=tuple(u for s in states for u in s.endpoints.http),
            grpc=tuple(u for s in states for u in s.endpoints.grpc),
        ),
        pid=states[0].pid,
        metrics_url=states[0].metrics_url,
        replicas=tuple(states),
    )


def _serving(replicas: Sequence[RuntimeProcess]) -> ComponentEndpoints:
    ready = [r.endpoints for r in replicas if r.status.serving]
    return ComponentEndpoints(
        http=tuple(u for e in ready for u in e.http), grpc=tuple(u for e in ready for u in e.grpc)
    )


class Component:
    """A component's replicas (`current`), and during a rollout the new version's (`pending`), which
    take over once all of them are ready."""

    def __init__(
        self,
        key: ComponentKey,
        launch: RuntimeLaunch,
        count: int,
        settings: SupervisorSettings,
        on_change: Callable[[], None],
    ) -> None:
        self.key = key
        self._settings = settings
        self._on_change = on_change
        self.launch = launch
        self.current: list[RuntimeProcess] = []
        self.pending_launch: RuntimeLaunch | None = None
        self.pending: list[RuntimeProcess] = []
        self._scale(self.current, launch, count)

    def _spawn(self, launch: RuntimeLaunch, replica: int) -> RuntimeProcess:
        process = RuntimeProcess(self.key, launch, self._settings, self._on_change, replica)
        process.start()
        return process

    def _scale(
        self, replicas: list[RuntimeProcess], launch: RuntimeLaunch, count: int
    ) -> list[RuntimeProcess]:
        """Start or remove replicas of `launch` until there are `count`; returns those removed."""
        while len(replicas) < count:
            replicas.append(self._spawn(launch, len(replicas)))
        removed = replicas[count:]
        del replicas[count:]
        return removed

    def update(self, launch: RuntimeLaunch, count: int) -> list[RuntimeProcess]:
        """Take a new plan; returns the processes no longer wanted (to stop once Envoy moved off them)."""
        fingerprint = launch.fingerprint
        if fingerprint == self.launch.fingerprint:  # back to (or still) what runs: drop any rollout
            retired, self.pending, self.pending_launch = self.pending, [], None
            return retired + self._scale(self.current, self.launch, count)
        if self.pending_launch is not None and fingerprint == self.pending_launch.fingerprint:
            return self._scale(self.pending, self.pending_launch, count)
        retired = self.pending  # a rollout overtaken by another: its replicas never served
        self.pending_launch, self.pending = launch, []
        self._scale(self.pending, launch, count)
        return retired

    def promote(self) -> list[RuntimeProcess]:
        """Once every new replica is ready, they serve and the old ones are returned, to be retired."""
        if not self.pending or not all(p.status.state is ComponentState.READY for p in self.pending):
            return []
        assert self.pending_launch is not None
        retired, self.current, self.launch = self.current, self.pending, self.pending_launch
        self.pending, self.pending_launch = [], None
        log.info("component %s: new version ready, the previous one is retired", "/".join(self.key))
        return retired

    def processes(self) -> list[RuntimeProcess]:
        return [*self.current, *self.pending]

    def endpoints(self) -> ComponentEndpoints:
        """The ready replicas of what serves; the new version's only while none of the old is ready."""
        serving = _serving(self.current)
        if not serving.http and not serving.grpc and self.pending:
            return _serving(self.pending)
        return serving

    @property
    def status(self) -> ComponentStatus:
        current = _aggregate(self.current)
        if not self.pending:
            return current
        new = _aggregate(self.pending)
        if new.state is ComponentState.FAILED:
            if any(r.status.serving for r in self.current):
                reason = f"the new version failed, the previous one keeps serving: {new.reason}"
            else:
                reason = new.reason
            return replace(current, state=ComponentState.FAILED, reason=reason)
        detail = f" ({new.reason})" if new.reason else ""
        return replace(current, state=ComponentState.STARTING, reason=f"new version {new.state}{detail}")


class Supervisor:
    """All runtime processes of the local mesh, keyed by component."""

    def __init__(self, settings: SupervisorSettings, on_change: Callable[[], None]) -> None:
        self._settings = settings
        self._on_change = on_change
        self._components: dict[ComponentKey, Component] = {}
        self._static: dict[ComponentKey, ComponentStatus] = {}
        self._retiring: list[RuntimeProcess] = []
        self._draining: set[RuntimeProcess] = set()

    def status(self, key: ComponentKey) -> ComponentStatus | None:
        if key in self._components:
            return self._components[key].status
        return self._static.get(key)

    def endpoints(self) -> dict[ComponentKey, ComponentEndpoints]:
        """Endpoints of every component that can take traffic now; the others get none (Envoy answers 503)."""
        result: dict[ComponentKey, ComponentEndpoints] = {}
        for key, component in self._components.items():
            endpoints = component.endpoints()
            if endpoints.http or endpoints.grpc:
                result[key] = endpoints
        for key, status in self._static.items():
            if status.serving:
                result[key] = status.endpoints
        return result

    def apply(self, plans: list[ComponentPlan]) -> None:
        """Start what is new or changed; what `plans` no longer need is left for `take_retiring`."""
        wanted = {plan.key: plan for plan in plans}
        self._static = {}
        for key, plan in wanted.items():
            if plan.external is not None:
                self._static[key] = ComponentStatus(ComponentState.EXTERNAL, endpoints=plan.external)
            elif plan.error is not None:
                self._static[key] = ComponentStatus(ComponentState.FAILED, reason=plan.error)
        for key, component in list(self._components.items()):
            if key not in wanted or wanted[key].launch is None:
                self._retiring += component.processes()
                del self._components[key]
        for key, wanted_plan in wanted.items():
            if wanted_plan.launch is None:
                continue
            if key in self._components:
                self._retiring += self._components[key].update(wanted_plan.launch, wanted_plan.replicas)
            else:
                on_change = self._changed_callback(key)
                self._components[key] = Component(
                    key, wanted_plan.launch, wanted_plan.replicas, self._settings, on_change
                )

    def _changed_callback(self, key: ComponentKey) -> Callable[[], None]:
        def changed() -> None:
            component = self._components.get(key)
            if component is not None:
                self._retiring += component.promote()
            self._on_change()

        return changed

    def take_retiring(self) -> list[RuntimeProcess]:
        """The processes no longer in any endpoints: the caller stops them (`retire`) once Envoy has
        the config without them."""
        retiring, self._retiring = self._retiring, []
        self._draining.update(retiring)
        return retiring

    async def retire(self, processes: Sequence[RuntimeProcess]) -> None:
        await asyncio.gather(*(p.stop() for p in processes))
        self._draining.difference_update(processes)

    async def stop_all(self) -> None:
        processes = [p for c in self._components.values() for p in c.processes()]
        processes += [*self._retiring, *self._draining]
        self._components.clear()
        self._retiring, self._draining = [], set()
        await asyncio.gather(*(p.stop() for p in processes))
