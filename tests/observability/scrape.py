"""Reading a registry back the way Prometheus would: scrape the exposition text and parse it."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from telemetry.exposition import Exposition


def samples(registry: CollectorRegistry) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Scraped text parsed back: sample name -> [(labels, value)]."""
    text = Exposition(registry).render()[0].decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    matches = [v for got, v in samples(registry).get(name, []) if labels.items() <= got.items()]
    assert len(matches) == 1, (name, labels, samples(registry).get(name))
    return matches[0]
