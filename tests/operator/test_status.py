"""Status computed from rendered objects and what the API holds (pure): rollouts, failures, merging."""

from __future__ import annotations

from typing import Any

from mesh.operator import status
from mesh.render import RenderSettings, render
from mesh.spec import parse_deployment
from tests.operator.test_operator import sdep


def deployment(desired: int, **live: int | list[dict[str, str]]) -> dict[str, Any]:
    return {"metadata": {"generation": 2}, "spec": {"replicas": desired}, "status": live}


def test_a_rollout_in_progress_is_not_ready_on_the_strength_of_old_pods() -> None:
    # three old pods available, one new one not yet: kubectl rollout status would still wait
    rolling = deployment(3, observedGeneration=2, replicas=4, updatedReplicas=1, availableReplicas=3)
    assert status.deployment_ready(rolling) == (False, "1 of 3 replicas updated")
    old_left = deployment(3, observedGeneration=2, replicas=4, updatedReplicas=3, availableReplicas=3)
    assert status.deployment_ready(old_left) == (False, "1 old replicas pending termination")
    stale = deployment(3, observedGeneration=1, replicas=3, updatedReplicas=3, availableReplicas=3)
    assert not status.deployment_ready(stale)[0]
    done = deployment(3, observedGeneration=2, replicas=3, updatedReplicas=3, availableReplicas=3)
    assert status.deployment_ready(done) == (True, "")
    assert status.deployment_ready(deployment(0, observedGeneration=2)) == (True, "")


def test_a_progress_deadline_exceeded_fails_the_deployment_and_conditions_keep_their_transition_times() -> (
    None
):
    spec = sdep()
    spec["metadata"]["uid"] = "u"
    parsed = parse_deployment(spec)
    rendered = render(parsed, RenderSettings())
    observed = status.Observed(live={status.key(obj): obj for obj in rendered})
    names = [status.key(obj) for obj in rendered if obj["kind"] == "Deployment"]
    stuck = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": "ReplicaSet has timed out progressing.",
    }
    for name in names:
        observed.live[name] = {**observed.live[name], "status": {"conditions": [stuck]}}
    new = status.compute(parsed, 3, rendered, observed, "cluster.local")
    if names:
        assert new["state"] == "Failed"
        assert "progress deadline exceeded" in new["description"]
    first, changes = status.merge(None, new, "2026-01-01T00:00:00Z")
    assert changes[0] == f"state {new['state']}"
    assert {c["lastTransitionTime"] for c in first["conditions"]} == {"2026-01-01T00:00:00Z"}
    again = status.compute(parsed, 3, rendered, observed, "cluster.local")
    second, changes = status.merge(first, again, "2026-01-01T00:05:00Z")
    assert changes == []
    assert status.same(first, second)  # nothing to write, no event


def test_the_merge_patch_nulls_what_is_gone() -> None:
    old = {"deploymentStatus": {"a": {"replicas": 1, "description": "x"}, "b": {}}, "kopf": {"keep": 1}}
    new = {"deploymentStatus": {"a": {"replicas": 1}}}
    patch, _ = status.merge(old, new, "t")
    assert patch["deploymentStatus"] == {"a": {"replicas": 1, "description": None}, "b": None}
    assert "kopf" not in patch  # not ours
