"""`python -m extproc --port N [--host 127.0.0.1] [--config graphs.json] [--state-dir DIR]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from extproc.server import ExtprocSettings, serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m extproc", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--config", type=Path, help="graph config JSON file, reloaded when it changes")
    parser.add_argument("--state-dir", type=Path, help="where learning routers keep their state")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = ExtprocSettings(
        host=args.host, port=args.port, config_path=args.config, state_dir=args.state_dir
    )
    try:  # uvloop (from uvicorn[standard]) cuts the per-request cost of the event loop
        import uvloop
    except ImportError:
        asyncio.run(serve(settings))
    else:
        uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
