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
    # alibi-detect's TensorFlow detectors are tf.keras (Keras 2) models: TensorFlow 2.16+ means Keras 3 by
    # tf.keras unless told, and Keras 3 neither loads nor saves them (set before TensorFlow's import)
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    try:
        detector = load(settings.kind, settings.storage_uri, settings.drift_batch_size)
    except Exception as error:  # any failure to load is reported, not a traceback
        print(f"error: cannot load the detector at {settings.storage_uri}: {error!r}", file=sys.stderr)
        return 1
    server = DetectorServer(settings, detector, DetectorMetrics(settings.model_name, settings.kind))
    logging.getLogger(__name__).info(
        "%s %s listening on %s:%d", settings.kind, settings.model_name, settings.host, settings.http_port
    )
    # on SIGTERM: what is in flight finishes, idle keep-alive connections (the logger's pool) do not hold
    # the stop for aiohttp's default minute
    web.run_app(
        server.app(),
        host=settings.host,
        port=settings.http_port,
        print=None,
        access_log=None,
        shutdown_timeout=5.0,
    )
    # Served and stopped: skip the interpreter's teardown, which with TensorFlow loaded took 15 s here
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
