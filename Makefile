# The two commands of the README: `make run` and `make test`. Both set up what they need first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
EXTRAS := trainer,operator,gateway,local,dev
SOURCES := pyproject.toml constraints.txt $(shell find core operator trainer gateway -name '*.py' 2>/dev/null)

# Real images for the training tests, from Debian's package (needs root or sudo once).
FASHION_MNIST := /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# A real PostgreSQL server for the label store's tests (they start it themselves), from Debian's package.
# Its server's path names its version; when none is installed the rule below installs the current one.
POSTGRES := $(firstword $(wildcard /usr/lib/postgresql/*/bin/pg_ctl) /usr/lib/postgresql/bin/pg_ctl)

.PHONY: run test test-unit test-services crds lint down clean constraints

# The environment: one virtualenv with every component. "strict" editable mode links each source file into the
# environment (see pyproject.toml); a new file needs a re-link, which this rule does when sources change.
$(BIN)/.installed: $(SOURCES)
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "KubeVision needs Python 3.11, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]' --config-settings editable_mode=strict
	touch $@

# Start the local platform (S3, MLflow, Triton, controller, gateway), publish the sample project, print how to use it.
run: $(BIN)/.installed
	$(BIN)/kubevision local up
	$(BIN)/kubevision local demo

down: $(BIN)/.installed
	$(BIN)/kubevision local down

$(FASHION_MNIST):
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist

$(POSTGRES):
	$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql

# Every test layer: unit, then real services, then end-to-end.
test: $(BIN)/.installed $(FASHION_MNIST) $(POSTGRES)
	$(BIN)/pytest

# The fast layer alone: pure tests that start nothing.
test-unit: $(BIN)/.installed
	$(BIN)/pytest -m unit

test-services: $(BIN)/.installed $(FASHION_MNIST) $(POSTGRES)
	$(BIN)/pytest -m "services or e2e"

crds: $(BIN)/.installed
	$(BIN)/kubevision crds

lint: $(BIN)/.installed
	$(BIN)/ruff check .

# After a change of dependencies in pyproject.toml: resolve afresh and record the result.
constraints:
	rm -rf /tmp/kubevision-resolve && $(PYTHON) -m venv /tmp/kubevision-resolve
	/tmp/kubevision-resolve/bin/pip install --quiet '.[$(EXTRAS)]'
	{ head -n 2 constraints.txt; /tmp/kubevision-resolve/bin/pip freeze --exclude kubevision; } > constraints.new
	mv constraints.new constraints.txt && rm -rf /tmp/kubevision-resolve

clean:
	rm -rf $(VENV) build *.egg-info
