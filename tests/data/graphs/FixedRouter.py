"""A user router that always picks the child named by its `branch` parameter."""

from __future__ import annotations

from typing import Any


class FixedRouter:
    def __init__(self, branch: int = 0) -> None:
        self.branch = branch

    def route(self, features: Any, names: Any) -> int:
        return self.branch

    def send_feedback(self, features: Any, names: Any, reward: float, truth: Any, routing: Any = None) -> Any:
        return []
