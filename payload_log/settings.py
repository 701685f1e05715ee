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
    """Every accepted event is fsynced before `log` returns (SQLite WAL, synchronous=FULL); concurrent
    events share one fsync. Survives a power cut."""
    OS = "os"
    """Accepted once written to the kernel (WAL, synchronous=NORMAL): survives a kill of any process
    (SIGKILL), not a power cut. Cheaper per commit: the bench measures both."""


class FullPolicy(StrEnum):
    REFUSE = "refuse"
    """A full spool refuses new events; each refusal is counted and logged (rate-limited)."""


class PayloadLoggerSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    spool_dir: Path = Field(description="Directory of the spool database; one per logging process.")
    default_endpoint: str | None = Field(
        None,
        description="Sink for events whose node sets no `logger.url` (http(s):// or file://...jsonl); "
        "None refuses such events. Seldon's Helm default is http://default-broker.",
    )
    max_spool_bytes: int = Field(
        1024 * MIB,
        ge=1,
        description="Bytes of spooled payloads and headers before the full policy applies; 1 GiB holds "
        "about 9 minutes of 1 KiB events at 2,000 events/s with the sink down.",
    )
    full_policy: FullPolicy = Field(FullPolicy.REFUSE, description="What a full spool does with new events.")
    fsync: FsyncPolicy = Field(
        FsyncPolicy.OS,
        description="Durability of an accepted event: `os` (the default) survives the kill of any process, "
        "which is what an answer waits for; `group` also fsyncs each commit (survives a power cut), about "
        "4-8x the CPU of a small commit on the CI machine (`make bench`: bare SQLite commit rows), and "
        "moves the writer off the event loop so the loop never waits for a disk.",
    )
    max_batch_events: int = Field(
        512, ge=1, description="Events written in one transaction (one fsync) at most; bounds commit latency."
    )
    group_commit_seconds: float = Field(
        0.05,
        ge=0,
        description="Seconds the writer gathers events into one transaction after the first arrives: a "
        "commit (one fsync) costs about 0.2 ms of CPU on the CI machine, and each batch also costs a "
        "delivery wake-up, a POST and a delete; threads only (an on-loop logger commits per loop turn), and "
        "cut short as soon as the callers waiting for their events (receipts) are all there is. "
        "At ~200 events/s (a logged single model) 0.05 s against 0.01 s cut extproc's CPU per logged "
        "request by ~200-350 us and the sink's by half, in the same runs; events reach the sink up to "
        "0.05 s later.",
    )
    group_commit_events: int = Field(
        32,
        ge=1,
        description="Queued events whose callers wait for the outcome (`submit`, `alog`) that end the "
        "group-commit window early: enough to share one fsync well, and a caller awaiting `alog` (64 in "
        "flight in bench/observability) is not held the whole window. Events posted without waiting "
        "(node events, `post`) do not end it: they fill the window up to `max_batch_events`, so at "
        "~2,000 events/s each commit, delivery wake-up and pipelined write carries ~100 events instead "
        "of 32 (paced micro-benchmark, 3 interleaved rounds at load ~6: writer + delivery + acks threads "
        "53-61 -> 34-45 us, the bench sink 15-16 -> 8-9 us of CPU per event).",
    )
    commit_delay_seconds: float = Field(
        0.005,
        ge=0,
        description="Seconds at most that an answer waiting for its events (`Receipt.written`) holds the "
        "group commit open for other requests' events, once the first such answer waits; the batch is "
        "written at once when every request with events on the way waits (nothing else will join it) or "
        "`group_commit_events` of them do. Bounds the latency durability adds to an answer under load.",
    )
    loop_commit_seconds: float = Field(
        0.0,
        ge=0,
        description="On the loop (`PayloadLogger.start(loop)`): seconds after a batch's first event "
        "before its commit (0: at the loop's next turn, so a commit carries what one turn's requests "
        "logged). Longer shares a commit among more requests but holds each answer that much longer: "
        "2 ms cut a 2-node graph executor's CPU per request 189 -> 160 us (HTTP sink, 16 in flight, "
        "30 unlogged), but cost a fast single model half its throughput in `make bench`.",
    )
    max_memory_events: int = Field(
        10_000,
        ge=0,
        description="Committed events delivery holds in memory, so it need not read them back from the "
        "spool; beyond it (a sink down for a while) lanes read the spool, as after a restart.",
    )
    max_pending_events: int = Field(
        20_000,
        ge=1,
        description="Events handed to `submit` but not yet on disk; more are refused (counted), so a "
        "disk slower than the offered load cannot grow memory without bound. 10 s at 2,000 events/s.",
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
        0.05,
        ge=0,
        description="Seconds a lane with fewer than `pipeline_events` events waits for more before it "
        "sends (the events are spooled already): one pipelined write then carries the events of many "
        "requests instead of a few (a write was a sixth of a logged runtime's CPU at one batch per "
        "loop turn). Events reach the sink up to this much later.",
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
