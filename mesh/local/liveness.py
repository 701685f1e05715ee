"""Liveness of a runtime that got ready: when a silent runtime is hung (restart it) and when it is only busy.

Kubernetes' semantics: once the runtime was ready (its startup allowance is the supervisor's ready
timeout), `GET /live` is probed every `period_s`, each probe given `timeout_s`, and `failure_threshold`
failed probes in a row restart it. Any HTTP answer, whatever its status, is alive.

What Kubernetes cannot tell, a local supervisor can: why a probe went unanswered. User code runs on the
runtime's event loop by default, so a model busy with a long predict (or several queued) answers no probe
until it is done, and on a loaded machine a healthy runtime can wait seconds for a CPU. Neither is hung:
its threads were running or waiting to run for the probe's whole time (`activity`). A probe that goes
unanswered while the runtime was runnable for at least `BUSY_SHARE` of it does not count as failed; one
stopped (SIGSTOP), deadlocked or blocked on I/O is not runnable and fails. Busy silence is bounded too
(`busy_limit_s`, from the last answer): a model spinning forever on the loop has stopped serving. A probe
whose connection is refused (nothing listens any more) always fails, and one whose own timer fired late
(the supervisor's loop was held up, so it says nothing about the runtime) counts for nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mesh.local.activity import Activity, runnable_share

LIVENESS_PATH = "/live"
# Share of a probe's time the runtime's threads must have been running or runnable for its silence to be
# taken as busy: a thread with work is one or the other all the time, a stopped or blocked one neither.
BUSY_SHARE = 0.5
# A probe that took this many times its timeout was held up in the supervisor, not in the runtime.
LATE_FACTOR = 1.5


@dataclass(frozen=True)
class LivenessPolicy:
    """periodSeconds, timeoutSeconds and failureThreshold of a Kubernetes livenessProbe, plus how long a
    busy runtime may go unanswered. Defaults: Kubernetes' period and threshold; a 5 s timeout (theirs is
    1 s) for a laptop shared with builds; 5 minutes of busy silence, room for a long predict."""

    period_s: float = 10.0
    timeout_s: float = 5.0
    failure_threshold: int = 3
    busy_limit_s: float = 300.0


class Outcome(StrEnum):
    ANSWERED = "answered"
    TIMED_OUT = "timed out"
    REFUSED = "refused"  # nothing listens on the port
    FAILED = "failed"  # another transport error (reset, closed)
    LATE = "late"  # the supervisor's own timer fired late: no evidence either way


@dataclass(frozen=True)
class LiveProbe:
    outcome: Outcome
    elapsed_s: float
    error: str = ""
    call: str = f"GET {LIVENESS_PATH}"  # what was asked, for the log


@dataclass(frozen=True)
class Verdict:
    dead: bool = False
    counted: bool = False  # this probe counted as a failure
    busy: bool = False  # unanswered, but the runtime was working
    reason: str = ""


class LivenessCheck:
    """The decision, fed one probe at a time with the runtime's runnable share during it; no I/O, no clock
    of its own (`now` is passed in), so it is tested without waiting."""

    def __init__(self, policy: LivenessPolicy, now: float) -> None:
        self.policy = policy
        self.failures = 0  # consecutive failed probes
        self.busy_probes = 0  # unanswered probes excused as busy, over this run
        self.busy_streak = 0  # of them since the last answer or failure
        self.answered_at = now

    def observe(self, probe: LiveProbe, share: float | None, state: str, now: float) -> Verdict:
        if probe.outcome is Outcome.ANSWERED:
            self.failures, self.busy_streak, self.answered_at = 0, 0, now
            return Verdict()
        if probe.outcome is Outcome.LATE:
            return Verdict(reason=f"probe held up in the supervisor ({probe.elapsed_s:.1f}s): not counted")
        silent_s = now - self.answered_at
        busy = probe.outcome is not Outcome.REFUSED and share is not None and share >= BUSY_SHARE
        if busy:
            self.failures = 0
            self.busy_probes += 1
            self.busy_streak += 1
            if silent_s < self.policy.busy_limit_s:
                return Verdict(busy=True, reason=f"{_what(probe)}, but the runtime is busy ({_pct(share)})")
            return Verdict(
                dead=True,
                busy=True,
                reason=f"no liveness answer for {silent_s:.0f}s while busy ({_pct(share)}), over the "
                f"{self.policy.busy_limit_s:.0f}s a busy runtime is allowed",
            )
        self.failures += 1
        self.busy_streak = 0
        threshold = self.policy.failure_threshold
        detail = f"{_what(probe)}; the process is {state}" + (f", {_pct(share)}" if share is not None else "")
        if self.failures < threshold:
            failed = f"liveness probe failed ({self.failures}/{threshold})"
            return Verdict(counted=True, reason=f"{failed}: {detail}")
        return Verdict(
            dead=True,
            counted=True,
            reason=f"liveness probe failed {self.failures} times in a row over {silent_s:.0f}s: {detail}",
        )


def _what(probe: LiveProbe) -> str:
    if probe.outcome is Outcome.TIMED_OUT:
        return f"{probe.call} unanswered after {probe.elapsed_s:.1f}s"
    return f"{probe.call} {probe.outcome}: {probe.error}"


def _pct(share: float | None) -> str:
    return "runnable n/a" if share is None else f"runnable {share:.0%} of the probe"


async def probe_live(client: httpx.AsyncClient, url: str, timeout_s: float) -> LiveProbe:
    """One `GET url` with a deadline; any answer is alive."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            await client.get(url)
    except TimeoutError:
        elapsed = time.monotonic() - started
        late = elapsed > timeout_s * LATE_FACTOR
        return LiveProbe(Outcome.LATE if late else Outcome.TIMED_OUT, elapsed)
    except httpx.ConnectError as error:
        return LiveProbe(Outcome.REFUSED, time.monotonic() - started, str(error) or type(error).__name__)
    except httpx.HTTPError as error:
        return LiveProbe(Outcome.FAILED, time.monotonic() - started, str(error) or type(error).__name__)
    return LiveProbe(Outcome.ANSWERED, time.monotonic() - started)


GRPC_HEALTH_CALL = "gRPC Health/Check"


async def probe_grpc_health(channel: grpc.aio.Channel, timeout_s: float) -> LiveProbe:
    """One standard gRPC health `Check` with a deadline (extproc's liveness); any status is an answer
    but UNAVAILABLE (nothing listens) and DEADLINE_EXCEEDED."""
    started = time.monotonic()
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        async with asyncio.timeout(timeout_s):
            await stub.Check(health_pb2.HealthCheckRequest())
    except TimeoutError:
        elapsed = time.monotonic() - started
        late = elapsed > timeout_s * LATE_FACTOR
        return LiveProbe(Outcome.LATE if late else Outcome.TIMED_OUT, elapsed, call=GRPC_HEALTH_CALL)
    except grpc.aio.AioRpcError as error:
        elapsed = time.monotonic() - started
        if error.code() is grpc.StatusCode.UNAVAILABLE:
            return LiveProbe(Outcome.REFUSED, elapsed, str(error.details()), GRPC_HEALTH_CALL)
        if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
            return LiveProbe(Outcome.TIMED_OUT, elapsed, call=GRPC_HEALTH_CALL)
    return LiveProbe(Outcome.ANSWERED, time.monotonic() - started, call=GRPC_HEALTH_CALL)


Probe = Callable[[], Awaitable[LiveProbe]]
Reading = Callable[[], Activity | None]


async def watch_liveness(
    check: LivenessCheck, probe: Probe, reading: Reading, report: Callable[[Verdict], None]
) -> Verdict:
    """Probe every `period_s` (start to start) until the verdict is dead, reporting every verdict that
    says something (for the log); returns the dead one."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        before = reading()
        result = await probe()
        after = None if result.outcome is Outcome.ANSWERED else reading()
        share = runnable_share(before, after, loop.time() - started)
        latest = after or before
        state = latest.described_state if latest is not None else "gone"
        verdict = check.observe(result, share, state, loop.time())
        if verdict.reason:
            report(verdict)
        if verdict.dead:
            return verdict
        await asyncio.sleep(max(0.0, started + check.policy.period_s - loop.time()))
