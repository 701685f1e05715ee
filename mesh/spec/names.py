"""Kubernetes name rules (DNS-1123) for the names seldon-mesh turns into Services, pods and headers."""

from __future__ import annotations

import re

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
MAX_LABEL_LENGTH = 63


def label_problem(name: str) -> str | None:
    """Why `name` is not a DNS-1123 label (lowercase alphanumerics and '-', at most 63), or None."""
    if not name:
        return "is required"
    if len(name) > MAX_LABEL_LENGTH:
        return f"{name!r} is longer than {MAX_LABEL_LENGTH} characters"
    if not _LABEL.match(name):
        return (
            f"{name!r} is not a DNS-1123 label: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return None
