"""The supervisor's rollout rules, with processes that are never started (their states are set by hand):
the old replicas serve until every new one is ready, a failed new version leaves the old serving and says
so, going back to what runs drops the rollout, and replicas scale without restarting the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.local import supervisor as supervisor_module
from mesh.local.plan import ComponentPlan, RuntimeLaunch
from mesh.local.supervisor import ComponentState, RuntimeProcess, Supervisor, SupervisorSettings
from xds_controller.translate import ComponentKey

KEY = ComponentKey("default", "dep", "main", "model")


def _state(supervisor: Supervisor) -> ComponentState:
    status = supervisor.status(KEY)
    assert status is not None
    return status.state


V1 = RuntimeLaunch(("--model-uri", "/models/v1"))
V2 = RuntimeLaunch(("--model-uri", "/models/v2"))


@pytest.fixture
def supervisor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Supervisor:
    monkeypatch.setattr(RuntimeProcess, "start", lambda self: None)  # no real process
    settings = SupervisorSettings("127.0.0.1", tmp_path, 60.0, 0.1, 1.0, 1.0)
    return Supervisor(settings, on_change=lambda: None)


def _component(supervisor: Supervisor) -> supervisor_module.Component:
    return supervisor._components[KEY]


def _set(process: RuntimeProcess, state: ComponentState, reason: str = "") -> None:
    process._set(state=state, reason=reason)


def _ports(processes: list[RuntimeProcess]) -> set[int]:
    return {p.endpoints.http[0].port for p in processes}


def _served(supervisor: Supervisor) -> set[int]:
    found = supervisor.endpoints().get(KEY)
    return {u.port for u in found.http} if found else set()


def test_the_old_replicas_serve_until_every_new_one_is_ready(supervisor: Supervisor) -> None:
    supervisor.apply([ComponentPlan(KEY, launch=V1, replicas=2)])
    old = list(_component(supervisor).current)
    for process in old:
        _set(process, ComponentState.READY)
    assert _served(supervisor) == _ports(old)

    supervisor.apply([ComponentPlan(KEY, launch=V2, replicas=2)])
    new = list(_component(supervisor).pending)
    assert len(new) == 2 and supervisor.take_retiring() == []
    _set(new[0], ComponentState.READY)
    assert _served(supervisor) == _ports(old)  # one new replica ready is not enough
    assert _state(supervisor) is ComponentState.STARTING

    _set(new[1], ComponentState.READY)
    assert _served(supervisor) == _ports(new)
    assert set(supervisor.take_retiring()) == set(old)  # stopped once Envoy has the new endpoints
    assert _state(supervisor) is ComponentState.READY


def test_a_failed_new_version_leaves_the_old_serving_and_says_why(supervisor: Supervisor) -> None:
    supervisor.apply([ComponentPlan(KEY, launch=V1)])
    (old,) = _component(supervisor).current
    _set(old, ComponentState.READY)
    supervisor.apply([ComponentPlan(KEY, launch=V2)])
    (new,) = _component(supervisor).pending
    _set(new, ComponentState.FAILED, "cannot load /models/v2")

    status = supervisor.status(KEY)
    assert status is not None and status.state is ComponentState.FAILED
    assert "previous one keeps serving" in status.reason and "cannot load /models/v2" in status.reason
    assert _served(supervisor) == _ports([old])

    supervisor.apply([ComponentPlan(KEY, launch=V1)])  # back to what runs: the rollout is dropped
    assert supervisor.take_retiring() == [new]
    assert _component(supervisor).current == [old]
    assert _state(supervisor) is ComponentState.READY


def test_scaling_adds_and_removes_replicas_without_restarting_the_others(supervisor: Supervisor) -> None:
    supervisor.apply([ComponentPlan(KEY, launch=V1, replicas=1)])
    (first,) = _component(supervisor).current
    supervisor.apply([ComponentPlan(KEY, launch=V1, replicas=3)])
    assert _component(supervisor).current[0] is first and len(_component(supervisor).current) == 3
    extra = _component(supervisor).current[1:]
    supervisor.apply([ComponentPlan(KEY, launch=V1, replicas=1)])
    assert _component(supervisor).current == [first]
    assert set(supervisor.take_retiring()) == set(extra)


def test_a_removed_component_retires_all_its_processes(supervisor: Supervisor) -> None:
    supervisor.apply([ComponentPlan(KEY, launch=V1, replicas=2)])
    current = list(_component(supervisor).current)
    supervisor.apply([ComponentPlan(KEY, launch=V2, replicas=2)])
    pending = list(_component(supervisor).pending)
    supervisor.apply([])
    assert set(supervisor.take_retiring()) == {*current, *pending}
    assert supervisor.status(KEY) is None
