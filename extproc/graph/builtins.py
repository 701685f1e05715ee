"""Built-in graph units that run inside the executor: A/B and bandit routers, the averaging combiner.

Seldon's Go executor only knows RANDOM_ABTEST; AVERAGE_COMBINER really averages here, and the two bandit
routers learn from feedback. Bandit state is saved through the injected `StateStore` after each feedback
and loaded when the router is first used, so it survives an extproc restart.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from extproc.codecs import CodecError, Payload, decode_v2_tensor, decode_v2_tensors, encode_v2_tensor
from extproc.graph.errors import GraphError
from extproc.graph.state import StateStore


class BuiltinRouter(Protocol):
    def route(self) -> int: ...

    def learn(self, branch: int, reward: float) -> None: ...


class RandomABTest:
    def __init__(self, ratio_a: float, rng: random.Random) -> None:
        self.ratio_a = ratio_a
        self._rng = rng

    def route(self) -> int:
        return 0 if self._rng.random() < self.ratio_a else 1

    def learn(self, branch: int, reward: float) -> None:
        return None


class FirstChild:
    """SIMPLE_ROUTER: always child 0 (the Java engine's stub)."""

    def route(self) -> int:
        return 0

    def learn(self, branch: int, reward: float) -> None:
        return None


class _Bandit:
    """Per-branch pull counts and reward sums, persisted under `key`."""

    def __init__(self, key: str, branches: int, store: StateStore) -> None:
        self.key = key
        self.branches = branches
        self._store = store
        saved = store.load(key) or {}
        counts = list(saved.get("counts", []))
        rewards = list(saved.get("rewards", []))
        self.counts = [float(c) for c in counts] if len(counts) == branches else [0.0] * branches
        self.rewards = [float(r) for r in rewards] if len(rewards) == branches else [0.0] * branches

    def learn(self, branch: int, reward: float) -> None:
        if not 0 <= branch < self.branches:
            return
        self.counts[branch] += 1
        self.rewards[branch] += reward
        self._store.save(self.key, {"counts": self.counts, "rewards": self.rewards})


class EpsilonGreedy(_Bandit):
    """Explore a random branch with probability `epsilon`, otherwise take the best mean reward so far."""

    def __init__(
        self, key: str, branches: int, epsilon: float, store: StateStore, rng: random.Random
    ) -> None:
        super().__init__(key, branches, store)
        self.epsilon = epsilon
        self._rng = rng

    def route(self) -> int:
        if self._rng.random() < self.epsilon:
            return self._rng.randrange(self.branches)
        means = [r / c if c else 0.0 for r, c in zip(self.rewards, self.counts, strict=True)]
        best = max(means)
        return self._rng.choice([i for i, m in enumerate(means) if m == best])


class ThompsonSampling(_Bandit):
    """Beta-Bernoulli sampling; a reward in [0, 1] counts as that fraction of a success."""

    def __init__(self, key: str, branches: int, store: StateStore, rng: random.Random) -> None:
        super().__init__(key, branches, store)
        self._rng = rng

    def route(self) -> int:
        samples = [
            self._rng.betavariate(1.0 + r, 1.0 + max(c - r, 0.0))
            for r, c in zip(self.rewards, self.counts, strict=True)
        ]
        return int(np.argmax(samples))

    def learn(self, branch: int, reward: float) -> None:
        super().learn(branch, min(max(reward, 0.0), 1.0))


def make_router(
    key: str, implementation: str, parameters: Mapping[str, Any], children: int, store: StateStore
) -> BuiltinRouter:
    seed = parameters.get("seed")
    rng = random.Random(int(seed)) if seed is not None else random.Random()
    if implementation == "RANDOM_ABTEST":
        return RandomABTest(float(parameters.get("ratioA", 0.5)), rng)
    if implementation == "EPSILON_GREEDY":
        branches = int(parameters.get("n_branches", children))
        return EpsilonGreedy(key, branches, float(parameters.get("epsilon", 0.1)), store, rng)
    if implementation == "THOMPSON_SAMPLING":
        return ThompsonSampling(key, int(parameters.get("n_branches", children)), store, rng)
    return FirstChild()


def average(outputs: Sequence[Payload]) -> Payload:
    """AVERAGE_COMBINER: the element-wise mean of the children's outputs, in the first child's shape."""
    if not outputs:
        raise GraphError(500, "COMBINER_ERROR", "AVERAGE_COMBINER got no child outputs")
    try:
        if all(p.protocol == "v2" for p in outputs):
            columns = zip(*(p.as_v2() for p in outputs), strict=True)
            tensors = []
            for column in columns:
                mean = np.mean([decode_v2_tensor(t).astype(np.float64) for t in column], axis=0)
                tensors.append(encode_v2_tensor(str(column[0].get("name", "output-0")), mean))
            return Payload.v2(tensors, outputs[0].hint)
        arrays = [decode_v2_tensor(p.as_v2()[0]).astype(np.float64) for p in outputs]
        mean = np.mean(arrays, axis=0)
        first = outputs[0].as_seldon()
        return Payload.seldon(decode_v2_tensors([encode_v2_tensor("output-0", mean)], first), outputs[0].hint)
    except (CodecError, ValueError) as error:
        raise GraphError(
            500, "COMBINER_ERROR", f"AVERAGE_COMBINER cannot average the outputs: {error}"
        ) from None


SIMPLE_MODEL_OUTPUT: dict[str, Any] = {"data": {"names": ["proba"], "ndarray": [[0.9, 0.1]]}}
