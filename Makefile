# The two commands of the README:
#   make run    installs what it needs, then runs the default experiment
#   make test   installs what it needs, then runs the test suite
# Both are idempotent: the installs are skipped when nothing changed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP_PY  := $(VENV)/.bdfl-installed
STAMP_NPM := node_modules/.bdfl-installed
STAMP_RAY := $(VENV)/.bdfl-ray-installed

.PHONY: setup run test build gas-snapshot clean

setup: $(STAMP_PY) $(STAMP_NPM)

$(STAMP_PY): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

# the optional Ray extra, for the tests only (tests/experiment/test_ray_cluster.py; docs/cluster.md)
$(STAMP_RAY): $(STAMP_PY)
	$(BIN)/python -m pip install --quiet -e ".[dev,ray]"
	@touch $@

$(STAMP_NPM): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

build: setup
	$(BIN)/bdfl build

# Gas snapshot of each protocol transaction (tests/forge/Gas.t.sol -> .gas-snapshot). `make test`
# fails when any of these gas numbers changes (tests/chain/test_forge.py runs
# `forge snapshot --check`); after an intended change run `make gas-snapshot` and commit
# .gas-snapshot with the change. forge compiles through the solc shim that `bdfl build` writes.
FORGE := node_modules/@foundry-rs/forge-linux-amd64/bin/forge

gas-snapshot: build
	$(FORGE) snapshot --match-contract '^Gas' --use "$${BDFL_SOLC:-build/contracts/solc-shim}" --offline

run: setup
	$(BIN)/bdfl run --config experiments/configs/default.toml

test: setup $(STAMP_RAY)
	$(BIN)/python -m pytest

clean:
	rm -rf build artifacts cache .pytest_cache .hypothesis
