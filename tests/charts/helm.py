"""The chart rendered by the real Helm engine (Helm 4, embedded in the helm-python-sdk wheel), offline."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "seldon-mesh"
RELEASE = "seldon-mesh"
NAMESPACE = "seldon-system"
Json = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    objects: list[Json]
    notes: str

    def of_kind(self, kind: str) -> list[Json]:
        return [o for o in self.objects if o["kind"] == kind]

    def named(self, kind: str, name: str) -> Json:
        found = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind} {name}: {[(o['kind'], o['metadata']['name']) for o in self.objects]}"
        return found[0]

    def has(self, kind: str, name: str) -> bool:
        return any(o["kind"] == kind and o["metadata"]["name"] == name for o in self.objects)


@cache
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART)


def render(values: Mapping[str, Any] | None = None, namespace: str = NAMESPACE) -> Rendered:
    """`helm template seldon-mesh charts/seldon-mesh -n <namespace>` with `values`, parsed."""
    files = chart().render(
        copy.deepcopy(dict(values or {})), name=RELEASE, namespace=namespace, is_install=True
    )
    objects: list[Json] = []
    notes = ""
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return Rendered(objects, notes)


def crds() -> list[Json]:
    """What Helm installs from crds/ (before the templates, never upgraded by Helm)."""
    return [yaml.safe_load(f["data"]) for f in chart().crds]


def settings_of(rendered: Rendered) -> Json:
    """The operator's settings.yaml, as the operator reads it."""
    loaded: Json = yaml.safe_load(rendered.named("ConfigMap", f"{RELEASE}-settings")["data"]["settings.yaml"])
    return loaded
