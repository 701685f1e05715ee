"""`python -m model_runtime.microservice Model --service-type MODEL ...`: Seldon's
`seldon-core-microservice` command line, mapped onto the same settings and core.

Ports default to `$PREDICTIVE_UNIT_HTTP_SERVICE_PORT` / `$PREDICTIVE_UNIT_GRPC_SERVICE_PORT` /
`$PREDICTIVE_UNIT_METRICS_SERVICE_PORT`, else 9000, 5000 and 6000, and the host to 0.0.0.0, as in a Seldon
container; the user class is looked up in the current directory. Flags this runtime has no use for
(`--single-threaded`, `--tracing`, ...) are accepted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from model_runtime.cli import add_server_flags, serve_or_exit
from model_runtime.settings import ServiceType

_SERVICE_TYPES = [t.value for t in ServiceType]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seldon-core-microservice",
        description="Seldon-compatible entry point of the seldon-mesh runtime.",
    )
    parser.add_argument(
        "interface_name", help="user class: Module (class Module in Module.py) or module.Class"
    )
    parser.add_argument("api_type", nargs="?", help="ignored (old positional REST/GRPC argument)")
    parser.add_argument("--service-type", default="MODEL", choices=_SERVICE_TYPES)
    parser.add_argument("--parameters", default=None)
    parser.add_argument("--name", default=None)
    parser.add_argument("--model-uri", default=None)
    parser.add_argument("--model-cache-dir", type=Path, default=None)
    for ignored in ("--grpc-workers", "--grpc-threads", "--persistence", "--tracing"):
        parser.add_argument(ignored, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--single-threaded", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    ports = (
        int(os.environ.get("PREDICTIVE_UNIT_HTTP_SERVICE_PORT", "9000")),
        int(os.environ.get("PREDICTIVE_UNIT_GRPC_SERVICE_PORT", "5000")),
    )
    metrics_port = int(os.environ.get("PREDICTIVE_UNIT_METRICS_SERVICE_PORT", "6000"))
    add_server_flags(parser, default_ports=ports, default_metrics_port=metrics_port)
    parser.set_defaults(host="0.0.0.0")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.implementation = None
    args.class_path = args.interface_name
    args.code_dir = Path.cwd()
    if args.workers == 1 and "GUNICORN_WORKERS" in os.environ:
        args.workers = int(os.environ["GUNICORN_WORKERS"])
    serve_or_exit(parser, args)


if __name__ == "__main__":
    main(sys.argv[1:])
