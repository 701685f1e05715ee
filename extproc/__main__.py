"""`python -m extproc --port N [--host 127.0.0.1] [--config graphs.json] [--state-dir DIR]
[--metrics-port N] [--http-port N]`.

The only place extproc reads its environment: `REQUEST_LOGGER_DEFAULT_ENDPOINT` (payload log sink for
nodes with no `logger.url`), `OTEL_EXPORTER_OTLP_ENDPOINT` and `SELDON_MESH_TRACE_SAMPLING_RATIO`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
from pathlib import Path

from extproc.server import ExtprocSettings, serve
from extproc.tracing import settings_from_env as tracing_settings_from_env
from payload_log import settings_from_env as logger_settings_from_env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m extproc", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--config", type=Path, help="graph config JSON file, reloaded when it changes")
    parser.add_argument("--state-dir", type=Path, help="where learning routers keep their state")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics on this port (0: a free one)"
    )
    parser.add_argument(
        "--http-port",
        type=int,
        help="also serve graph REST requests as an HTTP/1.1 upstream (0: a free port)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    state_dir: Path | None = args.state_dir
    spool_dir = state_dir / "spool" if state_dir is not None else Path(tempfile.mkdtemp(prefix="extproc-"))
    settings = ExtprocSettings(
        host=args.host,
        port=args.port,
        http_port=args.http_port,
        config_path=args.config,
        state_dir=state_dir,
        metrics_port=args.metrics_port,
        logger=logger_settings_from_env(spool_dir, os.environ),
        tracing=tracing_settings_from_env(os.environ),
    )
    try:  # uvloop (from uvicorn[standard]) cuts the per-request cost of the event loop
        import uvloop
    except ImportError:
        asyncio.run(serve(settings))
    else:
        uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
