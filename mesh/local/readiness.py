"""Readiness of a runtime process: its `/ready` read, and when a run that served has stopped serving.

The runtime answers 200 once its model is loaded and 503 with Seldon's error JSON otherwise, whose
`reason` says whether it is still loading or failed (`runtime_process` turns that into a state). A probe
left unanswered because the runtime is busy (user code holds its event loop; see `liveness`) does not
take it out of rotation: it is the only place its requests can be served, and they are being served.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from mesh.local.activity import Activity, runnable_share
from mesh.local.liveness import BUSY_SHARE, LivenessPolicy

# Consecutive failed probes before a Ready runtime is taken out of rotation: Kubernetes' readinessProbe
# failureThreshold default. One probe lost to a busy machine (the 2 s probe timeout) must not pull a
# healthy runtime's endpoints from Envoy and extproc; a runtime that exits is noticed at once anyway.
READY_FAILURE_THRESHOLD = 3
READY_PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Probe:
    ready: bool
    info: str = ""
    load_failed: bool = False
    answered: bool = True  # an HTTP answer came: the runtime itself says whether it is ready


class NotServing:
    """A run that served and then answers "not ready" (its model unloaded, a reload that failed) for as
    long as liveness allows a silent one (failure_threshold x period_s) is restarted: the spec says it
    serves, and a fresh process loads what the spec says. Unanswered probes (busy) do not count."""

    def __init__(self, policy: LivenessPolicy) -> None:
        self.allowance_s = policy.failure_threshold * policy.period_s
        self.since: float | None = None

    def too_long(self, probe: Probe, now: float) -> bool:
        if probe.ready:
            self.since = None
        elif probe.answered and self.since is None:
            self.since = now
        return self.since is not None and now - self.since >= self.allowance_s

    def reason(self, probe: Probe) -> str:
        detail = probe.info or "not ready"
        return f"answered not ready for {self.allowance_s:.0f}s after it had served: {detail}"


class BusySilence:
    """Whether an unanswered probe found the runtime busy: its process group was running or waiting for a
    CPU for at least `BUSY_SHARE` of the time since the previous unanswered one. The group is read only
    when a probe goes unanswered, so the first of a run of them always counts."""

    def __init__(self, reading: Callable[[], Activity | None]) -> None:
        self._reading = reading
        self._last: tuple[float, Activity | None] | None = None

    def busy(self, probe: Probe, now: float) -> bool:
        if probe.answered:
            self._last = None
            return False
        current = self._reading()
        last, self._last = self._last, (now, current)
        if last is None:
            return False
        share = runnable_share(last[1], current, now - last[0])
        return share is not None and share >= BUSY_SHARE


async def probe_ready(client: httpx.AsyncClient, url: str) -> Probe:
    """Read the runtime's `/ready`: its 503 body is Seldon's error JSON, `reason` says loading or failed."""
    try:
        response = await client.get(url)
    except httpx.HTTPError as error:
        return Probe(ready=False, info=f"readiness probe: {type(error).__name__}", answered=False)
    if response.status_code == 200:
        return Probe(ready=True)
    try:
        status = response.json()["status"]
        info, reason = str(status.get("info", "")), str(status.get("reason", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        info, reason = response.text[:300], ""
    return Probe(ready=False, info=info, load_failed="FAIL" in reason.upper())
