"""`python -m bench [SUITE ...]`: run the benchmark suites (all by default) and write bench/results/*.json.

A suite is a module `bench/<name>.py` with `run(args: list[str]) -> None`; it prints a table with our
figures, the anchor's, and their ratio, and writes its results with `bench.report.write_results`.
"""

from __future__ import annotations

import importlib
import sys
import time

SUITES = ("runtime", "graph", "xds", "observability", "xds_kube", "changes")


def main(argv: list[str]) -> int:
    wanted = [a for a in argv if not a.startswith("-")] or list(SUITES)
    flags = [a for a in argv if a.startswith("-")]
    unknown = [name for name in wanted if name not in SUITES]
    if unknown:
        print(f"unknown suite(s) {unknown}; choose from {list(SUITES)}", file=sys.stderr)
        return 2
    for name in wanted:
        if importlib.util.find_spec(f"bench.{name}") is None:
            print(f"== {name}: not written yet, skipped")
            continue
        started = time.monotonic()
        print(f"== {name}")
        importlib.import_module(f"bench.{name}").run(flags)
        print(f"== {name} done in {time.monotonic() - started:.0f}s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
