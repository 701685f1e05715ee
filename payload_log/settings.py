"""Settings of the payload logger: one typed object, built at the entrypoint (which also reads
`REQUEST_LOGGER_DEFAULT_ENDPOINT`, see `settings_from_env`) and passed down."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

MIB = 1 << 20
DEFAULT_ENDPOINT_ENV = "REQUEST_LOGGER_DEFAULT_ENDPOINT"


class FsyncPolicy(StrEnum):
    GROUP = "group"
    """Every accepted event is fdatasynced before `log` returns (or `written()`); events written while
    a sync runs share the next one. Survives a power cut."""
    OS = "os"
    """Accepted once written to the kernel (a `write` into the segment file): survives a kill of any
    process (SIGKILL), not a power cut. Cheaper: the bench measures both."""


class FullPolicy(StrEnum):
    REFUSE = "refuse"
    """A full spool refuses new events; each refusal is counted and logged (rate-limited)."""


class PayloadLoggerSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    spool_dir: Path = Field(description="Directory of the spool's segment files; one per logging process.")
    default_endpoint: str | None = Field(
        None,
        description="Sink for events whose node sets no `logger.url` (http(s):// or file://...jsonl); "
        "None refuses such events. Seldon's Helm default is http://default-broker.",
    )
    max_spool_bytes: int = Field(
        1024 * MIB,
        ge=1,
        description="Bytes of event records (payload, headers, framing) in the spool's segments before the "
        "full policy applies; a segment counts until all its events are delivered. 1 GiB holds about 9 "
        "minutes of 1 KiB events at 2,000 events/s with the sink down.",
    )
    full_policy: FullPolicy = Field(FullPolicy.REFUSE, description="What a full spool does with new events.")
    fsync: FsyncPolicy = Field(
        FsyncPolicy.OS,
        description="Durability of an accepted event: `os` (the default) survives the kill of any process, "
        "which is what an answer waits for; `group` also fdatasyncs (survives a power cut), on a thread "
        "of its own so no event loop waits for a disk, while answers wait for their sync (`make bench`: "
        "the logger rows with fsync).",
    )
    segment_bytes: int = Field(
        8 * MIB,
        ge=4096,
        description="Bytes of a spool segment file before the next begins (and at most an eighth of "
        "`max_spool_bytes`): a segment is deleted once all its events are delivered, so this is the "
        "granularity at which delivered events free disk.",
    )
    max_memory_events: int = Field(
        10_000,
        ge=0,
        description="Written events delivery holds in memory, so it need not read them back from the "
        "spool; beyond it (a sink down for a while) lanes read the spool, as after a restart.",
    )
    lanes_per_destination: int = Field(
        2,
        ge=1,
        description="Connections delivering to one sink at once; events of one request id share a lane, "
        "so stay ordered. Each pipelines up to `pipeline_events`, so 2 keep 256 events in flight, while "
        "fewer lanes put more events in each write (a loopback send cost ~100 us on the CI machine).",
    )
    pipeline_events: int = Field(
        128,
        ge=1,
        description="Events a lane sends in one batch at most (HTTP/1.1 pipelining on one connection): "
        "one write and one wake-up for several events, for us and for the sink.",
    )
    send_delay_seconds: float = Field(
        0.005,
        ge=0,
        description="Seconds a lane with fewer than `pipeline_events` events waits for more before it "
        "sends (the events are spooled already): one pipelined write then carries the events of several "
        "requests instead of one. Events reach the sink up to this much later. A logged runtime under wrk "
        "(16 connections, the sink on the same 2 cores) kept more throughput at 0.005 than at 0.05 (about "
        "7,100-8,000 against 4,100-6,000 requests/s, load ~12), at about the same CPU per request: bursts of "
        "a few hundred events every 50 ms held the loop and woke the sink all at once.",
    )
    http_timeout_seconds: float = Field(60.0, gt=0, description="Per POST, in seconds; Seldon's is 60 s.")
    backoff_initial_seconds: float = Field(
        0.1, gt=0, description="First retry delay ceiling in seconds; doubles per failed attempt."
    )
    backoff_max_seconds: float = Field(
        30.0, gt=0, description="Retry delay cap in seconds; a sink back from an outage is found within it."
    )
    read_batch_events: int = Field(64, ge=1, description="Events a lane reads from the spool at a time.")


def settings_from_env(
    spool_dir: Path, environ: Mapping[str, str], **overrides: object
) -> PayloadLoggerSettings:
    """For entrypoints only: the default endpoint comes from `REQUEST_LOGGER_DEFAULT_ENDPOINT`."""
    endpoint = environ.get(DEFAULT_ENDPOINT_ENV) or None
    return PayloadLoggerSettings.model_validate(
        {"spool_dir": spool_dir, "default_endpoint": endpoint, **overrides}
    )
