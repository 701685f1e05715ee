"""Kubernetes name rules (DNS-1123) for the names seldon-mesh turns into Services, pods and headers."""

from __future__ import annotations

import re

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
MAX_LABEL_LENGTH = 63
# A SeldonDeployment's or predictor's name may be longer than a label, as Seldon allows: the renderers
# shorten the names derived from it (`mesh.render.names.shorten`). Kubernetes caps object names at 253.
MAX_NAME_LENGTH = 253


def label_problem(name: str, max_length: int = MAX_LABEL_LENGTH) -> str | None:
    """Why `name` is not a DNS-1123 label (lowercase alphanumerics and '-', at most `max_length`), or None."""
    if not name:
        return "is required"
    if len(name) > max_length:
        return f"{name!r} is longer than {max_length} characters"
    if not _LABEL.match(name):
        return (
            f"{name!r} is not a DNS-1123 label: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return None
