"""Placeholder: the operator's entry point is being written."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    print("the seldon-mesh operator is not built yet", file=sys.stderr)
    return 2
