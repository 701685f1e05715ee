"""Built-in routers and the durable router state."""

from __future__ import annotations

from pathlib import Path

from extproc.graph import MemoryState, SqliteState
from extproc.graph.builtins import make_router


def test_random_abtest_sends_ratio_a_to_child_zero() -> None:
    router = make_router("k", "RANDOM_ABTEST", {"ratioA": 0.3, "seed": 7}, 2, MemoryState())
    picks = [router.route() for _ in range(20_000)]
    assert abs(picks.count(0) / len(picks) - 0.3) < 0.01
    assert set(picks) == {0, 1}


def test_thompson_sampling_prefers_the_rewarded_branch() -> None:
    router = make_router("k", "THOMPSON_SAMPLING", {"n_branches": 3, "seed": 1}, 3, MemoryState())
    for _ in range(100):
        router.learn(0, 0.0)
        router.learn(1, 0.1)
        router.learn(2, 1.0)
    picks = [router.route() for _ in range(500)]
    assert picks.count(2) > 450


def test_bandit_state_survives_a_new_store_on_the_same_file(tmp_path: Path) -> None:
    store = SqliteState(tmp_path / "routers.sqlite")
    router = make_router("dep/main/eg", "EPSILON_GREEDY", {"n_branches": 2, "epsilon": 0.0}, 2, store)
    router.learn(0, 0.0)
    router.learn(1, 1.0)
    store.close()
    reopened = SqliteState(tmp_path / "routers.sqlite")
    assert reopened.load("dep/main/eg") == {"counts": [1.0, 1.0], "rewards": [0.0, 1.0]}
    again = make_router("dep/main/eg", "EPSILON_GREEDY", {"n_branches": 2, "epsilon": 0.0}, 2, reopened)
    assert {again.route() for _ in range(50)} == {1}
    # a router whose branch count changed starts afresh rather than misreading old state
    wider = make_router("dep/main/eg", "EPSILON_GREEDY", {"n_branches": 3, "epsilon": 0.0}, 3, reopened)
    assert {wider.route() for _ in range(200)} == {0, 1, 2}
    reopened.close()
