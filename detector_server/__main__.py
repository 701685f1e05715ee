"""`python -m detector_server [flags] {OutlierDetector|AdversarialDetector|DriftDetector}`: load the
detector, then serve until SIGTERM or SIGINT. Runs in the detector environment (`detector_server.envs`)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from aiohttp import web

from detector_server.detectors import load
from detector_server.metrics import DetectorMetrics
from detector_server.server import DetectorServer
from detector_server.settings import from_args


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("CESERVER_LOGLEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = from_args(sys.argv[1:] if argv is None else argv, os.environ)
    try:
        detector = load(settings.kind, settings.storage_uri, settings.drift_batch_size)
    except Exception as error:  # any failure to load is reported, not a traceback
        print(f"error: cannot load the detector at {settings.storage_uri}: {error!r}", file=sys.stderr)
        return 1
    server = DetectorServer(settings, detector, DetectorMetrics(settings.model_name, settings.kind))
    logging.getLogger(__name__).info(
        "%s %s listening on %s:%d", settings.kind, settings.model_name, settings.host, settings.http_port
    )
    web.run_app(server.app(), host=settings.host, port=settings.http_port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
