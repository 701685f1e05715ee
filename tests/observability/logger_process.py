"""A payload-logging process for the SIGKILL test: logs events to a sink until killed, printing each
event id to stdout once `log` has returned ACCEPTED (that is the promise the test checks)."""

from __future__ import annotations

import sys
from pathlib import Path

from payload_log import PayloadLogger
from tests.observability.conftest import fast_settings
from tests.observability.events import pair


def main() -> None:
    spool_dir, endpoint = Path(sys.argv[1]), sys.argv[2]
    logger = PayloadLogger(fast_settings(spool_dir, endpoint))
    logger.start()
    print("started", flush=True)
    n = 0
    while True:
        n += 1
        for event in pair(f"req-{n}"):
            if logger.log(event).accepted:
                print(event.id, flush=True)


if __name__ == "__main__":
    main()
