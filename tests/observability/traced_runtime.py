"""The runtime side of the two-process trace test: continue the trace found in the request headers
(given as JSON on argv) with a runtime span, export it over OTLP and exit."""

from __future__ import annotations

import json
import sys

from model_runtime.tracing import Tracing, TracingSettings, attributes


def main() -> None:
    endpoint, headers = sys.argv[1], json.loads(sys.argv[2])
    tracing = Tracing(TracingSettings(otlp_endpoint=endpoint, service_name="classifier-runtime", batch=False))
    parent = tracing.extract(headers)
    with tracing.span("runtime predict", parent, attributes("iris", "default", "classifier")):
        pass
    tracing.shutdown()


if __name__ == "__main__":
    main()
