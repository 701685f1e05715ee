"""Settings of the local mesh (`seldon-mesh up`): one typed object, built at the entrypoint, passed down."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mesh.local.liveness import LivenessPolicy
from telemetry.tracing import TracingSettings, settings_from_env

# The OpenTelemetry SDK's batch export delay, which the gateway's (Envoy's) tracer honours too.
BSP_SCHEDULE_DELAY_ENV = "OTEL_BSP_SCHEDULE_DELAY"


class GatewayTracing(BaseModel):
    """Envoy's own spans: the gateway exports OTLP/gRPC to the same collector as extproc and runtimes."""

    model_config = ConfigDict(frozen=True)

    otlp_endpoint: str = Field(description="OTLP/gRPC collector, e.g. http://jaeger:4317.")
    sampling_ratio: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Share of requests without a sampled parent traced."
    )
    flush_interval_ms: int = Field(
        default=5000, gt=0, description="Longest a finished span waits before export (Envoy's default 5 s)."
    )


def gateway_tracing_from_env(environ: Mapping[str, str]) -> GatewayTracing | None:
    """For the `up` entrypoint: `OTEL_EXPORTER_OTLP_ENDPOINT`, the sampling ratio (as extproc and the
    runtimes read them) and `OTEL_BSP_SCHEDULE_DELAY`; None when no endpoint is set."""
    shared = settings_from_env(environ, TracingSettings)
    if shared.otlp_endpoint is None:
        return None
    delay = environ.get(BSP_SCHEDULE_DELAY_ENV)
    return GatewayTracing(
        otlp_endpoint=shared.otlp_endpoint,
        sampling_ratio=shared.sampling_ratio,
        **({"flush_interval_ms": int(float(delay))} if delay else {}),
    )


class LocalSettings(BaseModel):
    """Everything `seldon-mesh up` can be told. Ports of 0 mean "pick a free one"."""

    model_config = ConfigDict(frozen=True)

    state_dir: Path = Field(
        default=Path(".seldon-mesh"),
        description="Where the state store (SQLite), logs and the control address live; the CLI finds "
        "a running `up` through it, the way kubectl finds its API server through a kubeconfig.",
    )
    host: str = Field(default="127.0.0.1", description="Address every local server binds; loopback only.")
    gateway_port: int = Field(
        default=8000, description="The Envoy gateway port (Seldon's executor uses 8000)."
    )
    envoy_stats_port: int = Field(
        default=0,
        description="Loopback port serving only Envoy's stats (GET /stats, /stats/prometheus) for "
        "Prometheus; 0 picks a free one. Envoy's admin API itself is on a 0600 Unix socket.",
    )
    control_port: int = Field(default=0, description="Control API port for the CLI; 0 picks a free one.")
    runtime_workers: int = Field(default=1, ge=1, description="Worker processes per runtime component.")
    ready_timeout_s: float = Field(
        default=120.0, gt=0, description="Seconds a runtime may take to load its model before it is Failed."
    )
    restart_backoff_initial_s: float = Field(
        default=0.5,
        gt=0,
        description="First delay before restarting a runtime that died (doubles each time).",
    )
    restart_backoff_max_s: float = Field(
        default=30.0,
        gt=0,
        description="Ceiling of the restart delay, like Kubernetes' CrashLoopBackOff (5 min) "
        "but shorter, since a laptop user is watching.",
    )
    stop_grace_s: float = Field(default=5.0, gt=0, description="SIGTERM-to-SIGKILL grace for children.")
    liveness_period_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds between liveness probes (GET /live) of a runtime that got ready; Kubernetes' "
        "periodSeconds default.",
    )
    liveness_probe_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="Seconds each liveness probe waits for an answer (of any status); Kubernetes' "
        "timeoutSeconds is 1, more here for a laptop shared with builds.",
    )
    liveness_failure_threshold: int = Field(
        default=3,
        ge=1,
        description="Failed liveness probes in a row that restart a runtime (hung, stopped, its listener "
        "gone); Kubernetes' failureThreshold default. A probe unanswered while the runtime's threads were "
        "busy on a CPU or waiting for one (a long predict, a loaded machine) is not a failure.",
    )
    liveness_busy_limit_s: float = Field(
        default=300.0,
        gt=0,
        description="Seconds a runtime busy with work may leave liveness probes unanswered before it is "
        "restarted anyway (a predict spinning forever on its event loop); long predicts are better run "
        "in threads.",
    )
    envoy_log_level: str = Field(default="warning", description="Envoy's --log-level.")
    xds_delta: bool = Field(
        default=True,
        description="Bootstrap Envoy with incremental (delta) ADS: only changed resources are pushed. False "
        "uses state-of-the-world ADS, which some older proxies and debugging tools expect.",
    )
    tracing: GatewayTracing | None = Field(
        default=None, description="Trace requests at the gateway (Envoy's spans); None: Envoy does not trace."
    )
    graph_edge: Literal["ext_proc", "http", "ext_proc-http"] = Field(
        default="http",
        description="How Envoy hands a REST graph request to extproc: `http` (default), as an ordinary "
        "HTTP/1.1 upstream (extproc's REST edge), or `ext_proc`, an ext_proc stream (gRPC) enabled on the "
        "graph's route (about 0.8 ms more per request on 2 shared cores), or `ext_proc-http`, the ext_proc "
        "filter over Envoy's `http_service` to the REST edge (POSTs with a body; the rest as with `http`; "
        "Envoy gives that POST no trace context). gRPC graph requests always go to extproc as an upstream.",
    )

    @property
    def liveness(self) -> LivenessPolicy:
        return LivenessPolicy(
            period_s=self.liveness_period_s,
            timeout_s=self.liveness_probe_timeout_s,
            failure_threshold=self.liveness_failure_threshold,
            busy_limit_s=self.liveness_busy_limit_s,
        )

    @property
    def db_path(self) -> Path:
        return self.state_dir / "state.db"

    @property
    def control_file(self) -> Path:
        return self.state_dir / "control.json"

    @property
    def envoy_admin_socket(self) -> Path:
        """Envoy's admin API: a Unix socket only the owner can connect to (mode 0600, in the 0700 dir)."""
        return self.state_dir / "envoy" / "admin.sock"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pid_dir(self) -> Path:
        """A record per running child, so an `up` after a killed one can stop what it left."""
        return self.state_dir / "pids"
