"""`seldon-core-microservice <Class> --service-type MODEL ...`: Seldon's entry point, served by seldon-mesh's
runtime (`model_runtime.microservice` holds the flags and environment it honours or accepts and ignores).
"""

from __future__ import annotations

from collections.abc import Sequence

from model_runtime import microservice


def main(argv: Sequence[str] | None = None) -> None:
    microservice.main(argv)


if __name__ == "__main__":
    main()
