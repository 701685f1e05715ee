# seldon-mesh: the two commands are `make run` and `make test`; both install first when needed.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(shell find generated -name '*.proto')
GENERATED_STAMP := generated/.stamp
PYTEST_ARGS ?=

.PHONY: install generate run test lint typecheck contracts pytest bench clean iris e2e-cluster crd

install: $(STAMP) $(GENERATED_STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@# xds-protos ships an older copy of opentelemetry/proto/* (no InstrumentationScope); whichever wheel pip
	@# installs last owns those files. Put opentelemetry-proto's own files back so the OTLP exporter works.
	$(PY) -m pip install --quiet --force-reinstall --no-deps \
	  "opentelemetry-proto==$$($(PY) -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')"
	@touch $@

# Python and gRPC code (plus .pyi stubs) from the checked-in .proto files.
generate: $(STAMP)
	$(PY) -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)
	@touch $(GENERATED_STAMP)

$(GENERATED_STAMP): $(STAMP) $(PROTOS)
	$(MAKE) --no-print-directory generate

# The SeldonDeployment CRD, generated from the spec model (tests/render/test_crd.py fails when it is stale).
crd: install
	$(PY) -m mesh.render.crd > charts/seldon-mesh/crds/seldondeployments.yaml

iris: install
	@test -f examples/iris/model/model.joblib || $(PY) examples/iris/train.py

run: install iris
	$(VENV)/bin/seldon-mesh up examples/iris

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

contracts: install
	$(VENV)/bin/lint-imports

pytest: install explainer-env
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test: lint typecheck contracts pytest

# The detector server's own environment (alibi-detect with TensorFlow, numpy<2; ~3 GB, a few minutes the first
# time): `seldon-mesh detector serve` and tests/detectors build it on first use; this builds it ahead.
.PHONY: detector-env
detector-env: install
	$(PY) -m detector_server.envs

# The explainer server's own environments (alibi 0.9 with shap, numpy<2: ~1.1 GB, ~3 minutes the first time;
# the same with tensorflow-cpu<2.15 for IntegratedGradients: ~4 minutes more; then a check of their markers):
# `seldon-mesh up` builds one on an explainer's first start, tests/explainers use both.
.PHONY: explainer-env
explainer-env: install
	$(PY) explainer_server/env.py create --all

# load generators for bench/runtime.py: wrk and hey (REST), h2load from nghttp2-client (gRPC)
BENCH_TOOLS := wrk hey h2load

bench: install iris
	@missing=""; for tool in $(BENCH_TOOLS); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing load generators:$$missing"; \
		apt-get update -qq && apt-get install -y -qq wrk hey nghttp2-client >/dev/null; \
	fi
	$(PY) -m bench $(BENCH_ARGS)

# Checks only a real cluster can make (server-side dry runs, a real rollout), against the current kube
# context; never part of `make test` or CI. See e2e/cluster/test_cluster.py.
e2e-cluster: install
	$(VENV)/bin/pytest -p no:cacheprovider e2e/cluster $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(GENERATED_STAMP) .mypy_cache .ruff_cache .pytest_cache
	find generated -name '*_pb2*.py*' -delete
