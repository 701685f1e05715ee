"""One runtime worker in prometheus_client multiprocess mode (PROMETHEUS_MULTIPROC_DIR is set by the
test, as the supervisor sets it): records custom metrics, or with `scrape` prints the merged exposition."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry

from model_runtime.metrics import ModelIdentity, RuntimeMetrics
from telemetry.exposition import Exposition


def main() -> None:
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    registry = CollectorRegistry()
    if sys.argv[1] == "scrape":
        sys.stdout.write(Exposition(registry, directory).render()[0].decode())
        return
    metrics = RuntimeMetrics(registry, ModelIdentity(deployment_name="iris", model_name="classifier"))
    metrics.record_custom(
        [
            {"type": "COUNTER", "key": "mycounter", "value": 2},
            {"type": "GAUGE", "key": "mygauge", "value": float(sys.argv[1])},
        ]
    )
    metrics.record_feedback(1.0)


if __name__ == "__main__":
    main()
