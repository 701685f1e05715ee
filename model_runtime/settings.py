"""The runtime's settings: one typed object, built at the entrypoint (`cli`, `microservice`) from flags and
the environment, then passed down. Nothing below the entrypoint reads `os.environ`.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from model_runtime.metrics import ModelIdentity
from model_runtime.parameters import ParamValue
from model_runtime.tracing import TracingSettings
from payload_log import PayloadLoggerSettings

GIB = 1 << 30
GRPC_MAX_MESSAGE = (1 << 31) - 1  # grpcio caps message sizes at int32 max


class ServiceType(StrEnum):
    MODEL = "MODEL"
    ROUTER = "ROUTER"
    TRANSFORMER = "TRANSFORMER"
    OUTPUT_TRANSFORMER = "OUTPUT_TRANSFORMER"
    COMBINER = "COMBINER"


class ComponentSettings(BaseModel):
    """What to serve: one graph node's component."""

    model_config = ConfigDict(frozen=True)

    name: str = Field("model", description="Graph node name; keys `meta.routing` lookups for feedback.")
    implementation: str | None = Field(None, description="Prepackaged server, e.g. SKLEARN_SERVER.")
    class_path: str | None = Field(
        None, description="User class: `module.Class`, or `Class` for class Class in module Class."
    )
    code_dir: Path | None = Field(None, description="Directory put first on sys.path for the user class.")
    model_uri: str | None = Field(None, description="Where the model artefacts are (path or URI).")
    version: str = Field("", description="V2 model version; requests naming another version get 404.")
    parameters: dict[str, ParamValue] = Field(
        default_factory=dict, description="Graph parameters, already typed; keyword args to `__init__`."
    )
    service_type: ServiceType = Field(
        ServiceType.MODEL, description="Decides what the external Predict does for a one-node graph."
    )
    unit_id: str = Field("model", description="`meta.requestPath` key (PREDICTIVE_UNIT_ID, else name).")
    unit_image: str = Field("", description="`meta.requestPath` value (PREDICTIVE_UNIT_IMAGE).")
    predictor: str = Field(
        "", description="The predictor (PREDICTOR_ID): what Seldon's graph metadata is named after."
    )
    include_metrics_in_response: bool = Field(
        True,
        description="Echo custom metrics in `meta.metrics` (INCLUDE_METRICS_IN_CLIENT_RESPONSE); they are "
        "recorded on the metrics port either way. On, as this runtime has always answered.",
    )
    model_cache_dir: Path | None = Field(
        None, description="Where downloaded models go; None = a fresh temporary directory per process."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ComponentSettings:
        if (self.implementation is None) == (self.class_path is None):
            raise ValueError("give exactly one of implementation (e.g. SKLEARN_SERVER) or a user class")
        return self


class ServerSettings(BaseModel):
    """How to serve it: addresses, processes and limits."""

    model_config = ConfigDict(frozen=True)

    host: str = Field("127.0.0.1", description="Bind address for both transports; loopback unless asked.")
    http_port: int = Field(ge=0, le=65535, description="REST port (0 = any free port, one worker only).")
    grpc_port: int = Field(ge=0, le=65535, description="gRPC port (0 = any free port, one worker only).")
    workers: int = Field(1, ge=1, description="Processes sharing both ports via SO_REUSEPORT.")
    max_request_bytes: int = Field(
        GRPC_MAX_MESSAGE,
        ge=1,
        description="REST body (and answer) limit in bytes, 413 above it; the gRPC one by default, as the "
        "mesh has one limit for both (Seldon's grpc-max-message-size default, MaxInt32).",
    )
    grpc_max_message_bytes: int = Field(
        GRPC_MAX_MESSAGE, ge=1, le=GRPC_MAX_MESSAGE, description="gRPC send/receive limit in bytes."
    )
    user_code_threads: int = Field(
        0,
        ge=0,
        description="Threads running user code; 0 runs it on the event loop, fastest for small models.",
    )
    max_batch_size: int = Field(
        1, ge=1, description="V2 adaptive batching: most requests merged into one call (1 = off)."
    )
    max_batch_time_ms: float = Field(
        0.0, ge=0, description="V2 adaptive batching: longest wait in ms for a batch to fill."
    )
    graceful_shutdown_seconds: float = Field(
        10.0, ge=0, description="Seconds in-flight requests get after SIGTERM; under k8s' default 30."
    )

    @model_validator(mode="after")
    def _ports(self) -> ServerSettings:
        if self.workers > 1 and 0 in (self.http_port, self.grpc_port):
            raise ValueError("port 0 cannot be shared by several workers; give fixed ports")
        return self


class TelemetrySettings(BaseModel):
    """What the runtime reports: Prometheus metrics on their own port and OpenTelemetry spans."""

    model_config = ConfigDict(frozen=True)

    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Prometheus scrape port (`/prometheus`, also `/metrics`); None serves none. Several "
        "workers share one port, served by their supervisor with every worker's files merged.",
    )
    identity: ModelIdentity = Field(
        default_factory=ModelIdentity,
        description="Seldon's metric labels, and whether the gateway routes straight here (then this "
        "runtime records the executor's server histogram, as no ext_proc sees the request).",
    )
    tracing: TracingSettings = Field(
        default_factory=lambda: TracingSettings.model_validate({}),
        description="Spans per request, exported over OTLP; off unless an endpoint is given.",
    )
    multiprocess_dir: Path | None = Field(
        None, description="prometheus_client multiprocess directory; set by the worker supervisor only."
    )


class LoggerMode(StrEnum):
    ALL = "all"
    REQUEST = "request"
    RESPONSE = "response"


class PayloadLogSettings(BaseModel):
    """The node's Seldon `logger`, for a runtime the gateway routes its single-model predictor to: the
    runtime logs its external predictions and feedback itself, in process (`model_runtime.payloads`)."""

    model_config = ConfigDict(frozen=True)

    mode: LoggerMode = Field(LoggerMode.ALL, description="What to log: Seldon's logger.mode.")
    url: str | None = Field(
        None, description="The sink (logger.url); None: the spool's default endpoint, else refused."
    )
    namespace: str = Field("default", description="`Ce-Namespace` (SELDON_NAMESPACE).")
    source: str = Field("", description="`Ce-Source`: this runtime's URL; empty: its REST address.")
    spool: PayloadLoggerSettings = Field(
        description="The durable spool; `spool_dir` is the component's spool root, which must outlive the "
        "process (a volume on Kubernetes), so what a killed runtime accepted is delivered by the next "
        "one. Each process (worker, replica) claims a slot of its own under it (`payload_log.slots`)."
    )


class RuntimeSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    component: ComponentSettings
    server: ServerSettings
    telemetry: TelemetrySettings = Field(default_factory=lambda: TelemetrySettings.model_validate({}))
    log_level: str = Field("INFO", description="Python logging level name.")
    payload_log: PayloadLogSettings | None = Field(
        None, description="Payload logging of this runtime's external requests; None: none."
    )
