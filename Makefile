# The README's two commands are `make quickstart` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: setup quickstart test

# A virtual environment with the exact tested versions (constraints.txt).
$(BIN)/gns: pyproject.toml constraints.txt
	@echo "setting up $(VENV): torch, Ray, Optuna and the rest at the tested versions (constraints.txt);"
	@echo "about 1-3 minutes and 1.8 GB the first time, seconds after that ..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@
	@echo "$(VENV) is ready"

setup: $(BIN)/gns

# PNG export uses a Chromium when one is installed (make test installs one);
# the quickstart never waits for that download: without one it writes HTML and CSV.
quickstart: setup
	$(BIN)/gns launch examples/quickstart.yaml
	$(BIN)/gns report quickstart

test: setup
	bash scripts/ensure-chromium.sh
	$(BIN)/pytest
