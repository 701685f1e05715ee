from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from payload_log import PayloadLoggerSettings
from tests.observability.sink import RecordingSink


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    recording = RecordingSink()
    recording.start()
    yield recording
    recording.stop()


def fast_settings(spool_dir: Path, endpoint: str | None, **overrides: object) -> PayloadLoggerSettings:
    """Test settings: the same behaviour as the defaults, with the retry delay capped at 0.2 s so an
    outage's end is noticed quickly."""
    values: dict[str, object] = {
        "spool_dir": spool_dir,
        "default_endpoint": endpoint,
        "backoff_initial_seconds": 0.02,
        "backoff_max_seconds": 0.2,
        "http_timeout_seconds": 5.0,
    }
    values.update(overrides)
    return PayloadLoggerSettings.model_validate(values)
