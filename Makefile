# The two commands of the README: `make run` and `make test`. Both set up what they need first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
EXTRAS := trainer,operator,gateway,mlflow-server,local,dev
SOURCES := pyproject.toml constraints.txt

# Real images for the training tests, from Debian's package (needs root or sudo once).
FASHION_MNIST := /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# The kind script's linter, from Debian's package too.
SHELLCHECK := /usr/bin/shellcheck
# checkov, in its own environment: it pins boto3, packaging and others at versions that differ from ours.
CHECKOV := .venv-checkov/bin/checkov
# The browser the portal's test drives (Playwright's own browser download is not used), from Debian's package.
CHROMIUM := /usr/bin/chromium-headless-shell
# A real PostgreSQL server for the label store's tests (they start it themselves), from Debian's package.
# Its server's path names its version; when none is installed the rule below installs the current one.
POSTGRES := $(firstword $(wildcard /usr/lib/postgresql/*/bin/pg_ctl) /usr/lib/postgresql/bin/pg_ctl)
# A real Prometheus for the usage command's test (it starts the binary itself; the package's service is not used),
# from Debian's package.
PROMETHEUS := /usr/bin/prometheus

.PHONY: run test test-unit test-services crds lint down clean constraints images kind-up kind-down

# The environment: one virtualenv with every component, the project installed editable: a new module or package
# inside a component folder imports at once; a new component folder needs a line in pyproject.toml, and then this
# rule runs again (docs/architecture.md explains the mapping).
$(BIN)/.installed: $(SOURCES)
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "KubeVision needs Python 3.11, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	touch $@

# Start the local platform (S3, MLflow, Triton, controller, gateway), publish the sample project, print how to use it.
run: $(BIN)/.installed
	$(BIN)/kubevision local up
	$(BIN)/kubevision local demo

down: $(BIN)/.installed
	$(BIN)/kubevision local down

$(FASHION_MNIST):
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist

$(SHELLCHECK):
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq shellcheck

$(CHECKOV): constraints-checkov.txt
	test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet -c constraints-checkov.txt checkov
	touch $@

$(POSTGRES):
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql

$(CHROMIUM):
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium-headless-shell

$(PROMETHEUS):
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq prometheus

# Every test layer: unit, then real services, then end-to-end.
test: $(BIN)/.installed $(FASHION_MNIST) $(POSTGRES) $(SHELLCHECK) $(CHECKOV) $(CHROMIUM) $(PROMETHEUS)
	$(BIN)/pytest

# The fast layer alone: pure tests that start nothing.
test-unit: $(BIN)/.installed $(SHELLCHECK) $(CHECKOV)
	$(BIN)/pytest -m unit

test-services: $(BIN)/.installed $(FASHION_MNIST) $(POSTGRES) $(CHROMIUM) $(PROMETHEUS)
	$(BIN)/pytest -m "services or e2e"

# The generated CRDs, and the Helm chart's copy of them (a test keeps the two equal).
crds: $(BIN)/.installed
	$(BIN)/kubevision crds
	$(BIN)/kubevision crds --output-dir charts/kubevision/crds

# The container images, one target of images/Dockerfile each (needs docker).
IMAGE_REGISTRY ?= ghcr.io/kubevision
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGES := operator gateway trainer mlflow
images:
	@command -v docker >/dev/null || { echo "make images needs docker" >&2; exit 1; }
	for image in $(IMAGES); do \
	  docker build -f images/Dockerfile --target $$image -t $(IMAGE_REGISTRY)/$$image:$(IMAGE_TAG) . || exit 1; \
	done

# KubeVision on a local kind cluster, from nothing to a prediction (docs/install.md); kind-down deletes it.
kind-up: $(BIN)/.installed
	deploy/kind/kind.sh up

kind-down:
	deploy/kind/kind.sh down

lint: $(BIN)/.installed
	$(BIN)/ruff check .

# After a change of dependencies in pyproject.toml: resolve afresh and record the result.
constraints:
	rm -rf /tmp/kubevision-resolve && $(PYTHON) -m venv /tmp/kubevision-resolve
	/tmp/kubevision-resolve/bin/pip install --quiet '.[$(EXTRAS)]'
	{ head -n 2 constraints.txt; /tmp/kubevision-resolve/bin/pip freeze --exclude kubevision; } > constraints.new
	mv constraints.new constraints.txt && rm -rf /tmp/kubevision-resolve

clean:
	rm -rf $(VENV) .venv-checkov build *.egg-info
