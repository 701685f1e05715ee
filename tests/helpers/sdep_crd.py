"""Our own SeldonDeployment CRD as JSON schemas, so any test can validate SeldonDeployments against it.

The CRD is the checked-in chart file (what `kubectl apply` installs), made strict as the API server's
pruning would (see `tests.helpers.k8s_schemas.crd_schemas`).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.helpers.k8s_schemas import crd_schemas

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "charts" / "seldon-mesh" / "crds" / "seldondeployments.yaml"
GROUP = "machinelearning.seldon.io"


@cache
def checked_in_crd() -> dict[str, Any]:
    """The CRD file as `kubectl apply` reads it (parsed once: it is ~160 KB of YAML)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd: dict[str, Any] = yaml.load(CRD_FILE.read_text(encoding="utf-8"), Loader=loader)
    return crd


@cache
def sdep_crds() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict schema for every version our CRD serves; `validate(..., extra_crds=)`."""
    return crd_schemas([checked_in_crd()])


def sdep_schema(version: str) -> dict[str, Any]:
    """The strict JSON schema of a SeldonDeployment at `version` ("v1", "v1alpha2" or "v1alpha3")."""
    return sdep_crds()[(f"{GROUP}/{version}", "SeldonDeployment")]
