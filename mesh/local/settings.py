"""Settings of the local mesh (`seldon-mesh up`): one typed object, built at the entrypoint, passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


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
    envoy_admin_port: int = Field(default=0, description="Envoy admin port; 0 picks a free one.")
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
    envoy_log_level: str = Field(default="warning", description="Envoy's --log-level.")
    xds_delta: bool = Field(
        default=True,
        description="Bootstrap Envoy with incremental (delta) ADS: only changed resources are pushed. False "
        "uses state-of-the-world ADS, which some older proxies and debugging tools expect.",
    )

    @property
    def db_path(self) -> Path:
        return self.state_dir / "state.db"

    @property
    def control_file(self) -> Path:
        return self.state_dir / "control.json"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"
