"""`seldon-core-microservice Model --service-type MODEL ...` (also `python -m model_runtime.microservice`):
Seldon's command line and environment, mapped onto the same settings and core as `seldon-mesh-runtime`.

Honoured: the class (`Module`, class `Module` in `Module.py` of the current directory, or `module.Class`),
`--service-type` (else `$SERVICE_TYPE`), `--parameters` (else `$PREDICTIVE_UNIT_PARAMETERS`), the ports
`--http-port` / `--grpc-port` / `--metrics-port` (else `$PREDICTIVE_UNIT_HTTP_SERVICE_PORT` or
`$PREDICTIVE_UNIT_SERVICE_PORT`, `$PREDICTIVE_UNIT_GRPC_SERVICE_PORT`,
`$PREDICTIVE_UNIT_METRICS_SERVICE_PORT`; 9000, 5000 and 6000) on 0.0.0.0 as in a Seldon container,
`--workers` (`$GUNICORN_WORKERS`: processes), `--threads` (`$GUNICORN_THREADS`: threads for user code)
and `--log-level` (`$SELDON_LOG_LEVEL`).

Accepted and ignored, each with one log line saying why: Gunicorn's `--max-requests`,
`--max-requests-jitter`, `--keepalive`, `--access-log`, `--pidfile` (and their `GUNICORN_*` variables),
`--grpc-workers`, `--grpc-threads`, `--single-threaded`, `--debug`/`$SELDON_DEBUG` (Flask's debug server),
`--persistence`/`$PERSISTENCE` (Seldon's Redis persistence, removed upstream), `--tracing` (tracing here is
OTLP, from `OTEL_EXPORTER_OTLP_ENDPOINT`), and any flag this version does not know. Never exit status 2 for
a Seldon flag.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from model_runtime.cli import add_server_flags, serve_or_exit
from model_runtime.settings import ServiceType
from model_runtime.workers import configure_logging

log = logging.getLogger("seldon-core-microservice")

_SERVICE_TYPES = [t.value for t in ServiceType]
_FALSE = ("", "0", "false", "no", "off")

# flag -> (environment variable, why it is not needed here)
_IGNORED: dict[str, tuple[str | None, str]] = {
    "--max-requests": ("GUNICORN_MAX_REQUESTS", "workers are not recycled (no Gunicorn)"),
    "--max-requests-jitter": ("GUNICORN_MAX_REQUESTS_JITTER", "workers are not recycled (no Gunicorn)"),
    "--keepalive": ("GUNICORN_KEEPALIVE", "uvicorn keeps connections alive itself"),
    "--access-log": ("GUNICORN_ACCESS_LOG", "access is logged at INFO by the runtime"),
    "--pidfile": ("GUNICORN_PIDFILE", "no pid file is written"),
    "--grpc-workers": ("GRPC_WORKERS", "gRPC is served by every --workers process"),
    "--grpc-threads": ("GRPC_THREADS", "gRPC is asynchronous; user code uses --threads"),
    "--persistence": ("PERSISTENCE", "Seldon's Redis persistence is not supported"),
    "--tracing": ("TRACING", "tracing is OTLP here: set OTEL_EXPORTER_OTLP_ENDPOINT"),
}
_IGNORED_SWITCHES: dict[str, tuple[str | None, str]] = {
    "--single-threaded": (None, "user code runs on --threads (0: one at a time on the event loop)"),
    "--debug": ("SELDON_DEBUG", "there is no Flask debug server; use --log-level DEBUG"),
}


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="seldon-core-microservice",
        description="Seldon-compatible entry point of the seldon-mesh runtime.",
    )
    parser.add_argument(
        "interface_name", help="user class: Module (class Module in Module.py) or module.Class"
    )
    parser.add_argument("api_type", nargs="?", help="ignored (old positional REST/GRPC argument)")
    parser.add_argument(
        "--service-type",
        default=(env.get("SERVICE_TYPE") or "MODEL").upper(),
        type=str.upper,
        choices=_SERVICE_TYPES,
    )
    parser.add_argument("--parameters", default=None)
    parser.add_argument("--name", default=None)
    parser.add_argument("--model-uri", default=None)
    parser.add_argument("--model-cache-dir", type=Path, default=None)
    for flag in _IGNORED:
        parser.add_argument(flag, default=None, help=argparse.SUPPRESS)
    for flag in _IGNORED_SWITCHES:
        parser.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    http = env.get("PREDICTIVE_UNIT_HTTP_SERVICE_PORT") or env.get("PREDICTIVE_UNIT_SERVICE_PORT") or "9000"
    ports = (int(http), int(env.get("PREDICTIVE_UNIT_GRPC_SERVICE_PORT") or "5000"))
    metrics_port = int(env.get("PREDICTIVE_UNIT_METRICS_SERVICE_PORT") or "6000")
    add_server_flags(parser, default_ports=ports, default_metrics_port=metrics_port)
    parser.set_defaults(
        host="0.0.0.0",
        workers=int(env.get("GUNICORN_WORKERS") or "1"),
        threads=int(env.get("GUNICORN_THREADS") or "0"),
        log_level=env.get("SELDON_LOG_LEVEL") or "INFO",
    )
    return parser


def ignored_settings(
    args: argparse.Namespace, unknown: Sequence[str], environ: Mapping[str, str]
) -> list[str]:
    """One line per Seldon setting that was given but has no use here."""
    lines = []
    for flag, (variable, why) in _IGNORED.items():
        value, given = getattr(args, flag[2:].replace("-", "_")), flag
        if value is None and variable and environ.get(variable, "").lower() not in _FALSE:
            value, given = environ[variable], f"${variable}"
        if value is not None and not (flag == "--persistence" and str(value).lower() in _FALSE):
            lines.append(f"{given} {value} ignored: {why}")
    for flag, (variable, why) in _IGNORED_SWITCHES.items():
        if getattr(args, flag[2:].replace("-", "_")):
            lines.append(f"{flag} ignored: {why}")
        elif variable and environ.get(variable, "").lower() not in _FALSE:
            lines.append(f"${variable} ignored: {why}")
    if unknown:
        lines.append(f"unknown arguments ignored: {' '.join(unknown)}")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    args.log_level = str(args.log_level).upper()
    configure_logging(args.log_level)
    for line in ignored_settings(args, unknown, os.environ):
        log.info("%s", line)
    args.implementation = None
    args.class_path = args.interface_name
    args.code_dir = Path.cwd()
    serve_or_exit(parser, args)


if __name__ == "__main__":
    main(sys.argv[1:])
