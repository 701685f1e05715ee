"""`seldon-mesh-runtime` / `python -m model_runtime`: flags and environment → `RuntimeSettings` → serve.

This is the only module (with `microservice`) that reads the environment:
`PREDICTIVE_UNIT_PARAMETERS` (when `--parameters` is absent), `PREDICTIVE_UNIT_ID`,
`PREDICTIVE_UNIT_IMAGE`, `INCLUDE_METRICS_IN_CLIENT_RESPONSE`, the metric labels Seldon gives a
component (`SELDON_DEPLOYMENT_ID`, `PREDICTOR_ID`, `PREDICTOR_VERSION`) and the tracing variables
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `SELDON_MESH_TRACE_SAMPLING_RATIO`), and with `--logger-mode` the payload
log's `REQUEST_LOGGER_DEFAULT_ENDPOINT`, `SELDON_NAMESPACE` and `SELDON_MESH_SPOOL_DIR` (the spool root).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from model_runtime import tracing
from model_runtime.errors import BadParameter
from model_runtime.metrics import identity_from_env
from model_runtime.parameters import parse_parameters
from model_runtime.settings import GRPC_MAX_MESSAGE, LoggerMode, RuntimeSettings, ServiceType
from model_runtime.workers import configure_logging, run
from payload_log import DEFAULT_ENDPOINT_ENV, FsyncPolicy

# the root of the runtimes' spools when --logger-spool-dir is not given (`seldon-mesh up` may set it)
SPOOL_DIR_ENV = "SELDON_MESH_SPOOL_DIR"


class UsageError(Exception):
    """Bad flags or parameters: reported on stderr, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seldon-mesh-runtime",
        description="Serve one Seldon graph node (prepackaged server or Python class) over REST and gRPC.",
    )
    what = parser.add_argument_group("what to serve")
    source = what.add_mutually_exclusive_group(required=True)
    source.add_argument("--implementation", help="prepackaged server, e.g. SKLEARN_SERVER")
    source.add_argument(
        "--class", dest="class_path", help="user class: module.Class, or Class in module Class"
    )
    what.add_argument("--code-dir", type=Path, help="directory holding the user class's module")
    what.add_argument("--model-uri", help="model location: path, file://, http(s)://, gs://, s3://")
    what.add_argument("--parameters", help='graph parameters, JSON [{"name","value","type"}]')
    what.add_argument("--name", default=None, help="graph node name (default: $PREDICTIVE_UNIT_ID or model)")
    what.add_argument("--model-version", default="", help="V2 model version (default: none)")
    what.add_argument("--service-type", default="MODEL", choices=[t.value for t in ServiceType])
    what.add_argument("--model-cache-dir", type=Path, help="where remote models are downloaded")
    add_server_flags(parser, default_ports=None)
    return parser


def add_server_flags(
    parser: argparse.ArgumentParser,
    default_ports: tuple[int, int] | None,
    default_metrics_port: int | None = None,
) -> None:
    serve = parser.add_argument_group("how to serve")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    if default_ports is None:
        serve.add_argument("--http-port", type=int, required=True)
        serve.add_argument("--grpc-port", type=int, required=True)
    else:
        serve.add_argument("--http-port", type=int, default=default_ports[0])
        serve.add_argument("--grpc-port", type=int, default=default_ports[1])
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the ports (default 1)")
    serve.add_argument(
        "--threads", type=int, default=0, help="threads for user code; 0 = run it on the event loop (default)"
    )
    serve.add_argument(
        "--max-request-bytes", type=int, default=GRPC_MAX_MESSAGE, help="REST body limit (default 2 GiB - 1)"
    )
    serve.add_argument("--grpc-max-message-bytes", type=int, default=GRPC_MAX_MESSAGE)
    serve.add_argument(
        "--max-batch-size", type=int, default=None, help="V2 adaptive batching: requests per batch (1 = off)"
    )
    serve.add_argument(
        "--max-batch-time-ms", type=float, default=None, help="V2 adaptive batching: wait for a batch, ms"
    )
    serve.add_argument("--graceful-shutdown", type=float, default=10.0, help="seconds (default 10)")
    serve.add_argument("--log-level", default="INFO")
    report = parser.add_argument_group("what to report")
    report.add_argument(
        "--metrics-port",
        type=int,
        default=default_metrics_port,
        help="serve Prometheus metrics (/prometheus, /metrics) on this port"
        + (f" (default {default_metrics_port})" if default_metrics_port is not None else " (default: none)"),
    )
    report.add_argument(
        "--gateway-facing",
        action="store_true",
        help="the gateway routes this predictor straight here: record the executor's request histogram",
    )
    logged = parser.add_argument_group("payload logging (a single model's logger, logged here)")
    logged.add_argument(
        "--logger-mode",
        choices=[m.value for m in LoggerMode],
        help="log predictions and feedback (default: off)",
    )
    logged.add_argument("--logger-url", help="the sink (default: $REQUEST_LOGGER_DEFAULT_ENDPOINT)")
    logged.add_argument(
        "--logger-spool-dir",
        type=Path,
        help=f"spool root, kept across restarts (default: ${SPOOL_DIR_ENV}/<ns>/<deployment>/<predictor>/"
        "<node>, else the same under ~/.local/state/seldon-mesh/spool)",
    )
    logged.add_argument(
        "--logger-fsync",
        choices=[p.value for p in FsyncPolicy],
        default=FsyncPolicy.OS.value,
        help="os: an answer waits until its events survive any process kill (default); group: also "
        "fsync each commit (survives power loss, costs more CPU per event)",
    )
    logged.add_argument(
        "--logger-max-spool-bytes",
        type=int,
        default=None,
        help="spool bound; a full spool refuses new events, counted in metrics (default 1 GiB)",
    )


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> RuntimeSettings:
    text = args.parameters if args.parameters is not None else environ.get("PREDICTIVE_UNIT_PARAMETERS")
    try:
        parameters = parse_parameters(text)
    except BadParameter as exc:
        raise UsageError(f"{exc.info} ({exc.reason})") from exc
    # batching is the server's business, not a constructor argument of the model
    batch_size = parameters.pop("max_batch_size", None)
    batch_time = parameters.pop("max_batch_time_ms", None)
    name = args.name or environ.get("PREDICTIVE_UNIT_ID") or "model"
    component: dict[str, Any] = {
        "name": name,
        "implementation": args.implementation,
        "class_path": args.class_path,
        "code_dir": args.code_dir,
        "model_uri": args.model_uri,
        "version": getattr(args, "model_version", "") or "",
        "parameters": parameters,
        "service_type": args.service_type,
        "unit_id": environ.get("PREDICTIVE_UNIT_ID") or name,
        "unit_image": environ.get("PREDICTIVE_UNIT_IMAGE", ""),
        "predictor": environ.get("PREDICTOR_ID", ""),
        "include_metrics_in_response": environ.get("INCLUDE_METRICS_IN_CLIENT_RESPONSE", "true").lower()
        in ("1", "true", "yes", "on"),
        "model_cache_dir": args.model_cache_dir,
    }
    server = {
        "host": args.host,
        "http_port": args.http_port,
        "grpc_port": args.grpc_port,
        "workers": args.workers,
        "max_request_bytes": args.max_request_bytes,
        "grpc_max_message_bytes": args.grpc_max_message_bytes,
        "user_code_threads": args.threads,
        "graceful_shutdown_seconds": args.graceful_shutdown,
        "max_batch_size": _first(args.max_batch_size, batch_size, 1),
        "max_batch_time_ms": _first(args.max_batch_time_ms, batch_time, 0.0),
    }
    telemetry = {
        "metrics_port": args.metrics_port,
        "identity": identity_from_env(environ, gateway_facing=args.gateway_facing),
        "tracing": tracing.settings_from_env(environ),
    }
    document: dict[str, Any] = {
        "component": component,
        "server": server,
        "telemetry": telemetry,
        "log_level": args.log_level,
    }
    if getattr(args, "logger_mode", None):
        document["payload_log"] = _payload_log(args, environ, telemetry["identity"], name)
    try:
        return RuntimeSettings.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageError(problems) from exc


def _payload_log(
    args: argparse.Namespace, environ: Mapping[str, str], identity: Any, node: str
) -> dict[str, Any]:
    namespace = environ.get("SELDON_NAMESPACE") or "default"
    spool_dir = args.logger_spool_dir
    if spool_dir is None:
        root = environ.get(SPOOL_DIR_ENV)
        base = Path(root) if root else _state_home(environ) / "seldon-mesh" / "spool"
        spool_dir = (
            base / namespace / (identity.deployment_name or "-") / (identity.predictor_name or "-") / node
        )
    return {
        "mode": args.logger_mode,
        "url": args.logger_url or None,
        "namespace": namespace,
        "spool": {
            "spool_dir": spool_dir,
            "default_endpoint": environ.get(DEFAULT_ENDPOINT_ENV) or None,
            "fsync": args.logger_fsync,
            **({"max_spool_bytes": args.logger_max_spool_bytes} if args.logger_max_spool_bytes else {}),
        },
    }


def _state_home(environ: Mapping[str, str]) -> Path:
    state = environ.get("XDG_STATE_HOME")
    return Path(state) if state else Path(environ.get("HOME") or "~").expanduser() / ".local" / "state"


def _first(*values: Any) -> Any:
    return next(v for v in values if v is not None)


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    serve_or_exit(parser, args)


def serve_or_exit(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    try:
        settings = settings_from_args(args, os.environ)
    except UsageError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    configure_logging(settings.log_level)
    sys.exit(run(settings))
