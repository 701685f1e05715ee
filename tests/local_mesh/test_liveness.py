"""The liveness decision (`mesh.local.liveness`), fed probe outcomes and runnable shares with a clock of the
test's choosing, and the runnable share (`mesh.local.activity`) of real processes: busy, stopped, asleep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from mesh.local.activity import Activity, group_activity, runnable_share
from mesh.local.liveness import BUSY_SHARE, LivenessCheck, LivenessPolicy, LiveProbe, Outcome, Verdict

POLICY = LivenessPolicy(period_s=10.0, timeout_s=5.0, failure_threshold=3, busy_limit_s=300.0)
TIMED_OUT = LiveProbe(Outcome.TIMED_OUT, 5.0)
ANSWERED = LiveProbe(Outcome.ANSWERED, 0.01)
IDLE, BUSY = 0.0, 1.0


def _feed(check: LivenessCheck, *steps: tuple[LiveProbe, float | None]) -> list[Verdict]:
    """One probe per period, starting one period after the check's start (time 0)."""
    return [
        check.observe(probe, share, "sleeping", POLICY.period_s * (index + 1))
        for index, (probe, share) in enumerate(steps)
    ]


def test_three_unanswered_probes_of_an_idle_process_are_dead_on_the_third() -> None:
    verdicts = _feed(LivenessCheck(POLICY, 0.0), *[(TIMED_OUT, IDLE)] * 3)
    assert [v.dead for v in verdicts] == [False, False, True]
    assert all(v.counted for v in verdicts)
    assert verdicts[0].reason.startswith("liveness probe failed (1/3): GET /live unanswered after 5.0s")
    assert "failed 3 times in a row over 30s" in verdicts[2].reason
    assert "the process is sleeping, runnable 0% of the probe" in verdicts[2].reason


def test_an_answer_of_any_kind_resets_the_count() -> None:
    check = LivenessCheck(POLICY, 0.0)
    verdicts = _feed(check, (TIMED_OUT, IDLE), (TIMED_OUT, IDLE), (ANSWERED, None), (TIMED_OUT, IDLE))
    assert not any(v.dead for v in verdicts)
    assert check.failures == 1


def test_a_busy_process_is_not_counted_until_its_busy_allowance_is_spent() -> None:
    policy = LivenessPolicy(period_s=10.0, timeout_s=5.0, failure_threshold=3, busy_limit_s=60.0)
    check = LivenessCheck(policy, 0.0)
    verdicts = [check.observe(TIMED_OUT, BUSY_SHARE, "running", 10.0 * (i + 1)) for i in range(6)]
    assert [v.dead for v in verdicts] == [False] * 5 + [True]
    assert all(v.busy and not v.counted for v in verdicts)
    assert "but the runtime is busy (runnable 50% of the probe)" in verdicts[0].reason
    assert "no liveness answer for 60s while busy" in verdicts[5].reason
    assert check.busy_probes == 6


def test_busy_probes_break_a_run_of_failures() -> None:
    """Work in between is a sign of life: failures must be consecutive to restart."""
    check = LivenessCheck(POLICY, 0.0)
    steps = [(TIMED_OUT, IDLE), (TIMED_OUT, IDLE), (TIMED_OUT, BUSY), (TIMED_OUT, IDLE), (TIMED_OUT, IDLE)]
    assert not any(v.dead for v in _feed(check, *steps))
    assert check.failures == 2


def test_a_refused_connection_fails_however_busy_the_process() -> None:
    refused = LiveProbe(Outcome.REFUSED, 0.001, "All connection attempts failed")
    verdicts = _feed(LivenessCheck(POLICY, 0.0), *[(refused, BUSY)] * 3)
    assert verdicts[2].dead
    assert "GET /live refused: All connection attempts failed" in verdicts[2].reason


def test_a_probe_held_up_in_the_supervisor_counts_for_nothing() -> None:
    check = LivenessCheck(POLICY, 0.0)
    late = LiveProbe(Outcome.LATE, 9.0)
    verdicts = _feed(check, (TIMED_OUT, IDLE), (late, IDLE), (late, IDLE), (TIMED_OUT, IDLE))
    assert not any(v.dead or v.busy for v in verdicts)
    assert "held up in the supervisor" in verdicts[1].reason
    assert check.failures == 2


def test_without_a_reading_unanswered_probes_count() -> None:
    """Off Linux (no /proc) the decision is Kubernetes' own: failures in a row."""
    verdicts = _feed(LivenessCheck(POLICY, 0.0), *[(TIMED_OUT, None)] * 3)
    assert verdicts[2].dead and "runnable" not in verdicts[2].reason


@pytest.fixture
def spinner() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


def _wait_state(pid: int, state: str) -> None:
    """Until the process shows `state` (a signal, an exec and a start-up take a moment)."""
    deadline = time.monotonic() + 30
    while (reading := group_activity(pid)) is None or reading.leader_state != state:
        assert time.monotonic() < deadline, f"pid {pid} never got to state {state}: {reading}"
        time.sleep(0.01)


def _share_over(pid: int, seconds: float) -> tuple[float | None, Activity | None]:
    before, started = group_activity(pid), time.monotonic()
    time.sleep(seconds)
    after = group_activity(pid)
    return runnable_share(before, after, time.monotonic() - started), after


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_spinning_process_is_runnable_however_loaded_the_machine(
    spinner: subprocess.Popen[bytes],
) -> None:
    """On a CPU or queued for one all the time: the share does not depend on how busy the machine is."""
    _wait_state(spinner.pid, "R")
    share, after = _share_over(spinner.pid, 0.5)
    assert share is not None and share >= BUSY_SHARE
    assert after is not None and after.leader_state == "R"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_stopped_or_sleeping_process_is_not(spinner: subprocess.Popen[bytes]) -> None:
    os.killpg(spinner.pid, signal.SIGSTOP)
    try:
        _wait_state(spinner.pid, "T")
        share, after = _share_over(spinner.pid, 0.5)
    finally:
        os.killpg(spinner.pid, signal.SIGCONT)
    assert share == 0.0
    assert after is not None and after.described_state == "stopped"
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        _wait_state(sleeper.pid, "S")  # past its start-up
        share, after = _share_over(sleeper.pid, 0.5)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert share is not None and share < BUSY_SHARE  # it may still have been loading a library
    assert after is not None and after.described_state == "sleeping"
    assert group_activity(sleeper.pid) is None  # gone: nothing to read
