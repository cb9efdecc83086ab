# Two commands set up a fresh machine: `make run` and `make test`. Both install what is
# missing first (uv from PyPI, then the locked workspace into .venv).
SHELL := /bin/bash
PY := .venv/bin/python
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
STAMP := .venv/.installed

.PHONY: install run up down test test-fast test-e2e bench bench-membership lint clean

$(STAMP): pyproject.toml uv.lock libs/mutualaid/pyproject.toml $(wildcard services/*/pyproject.toml)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || \
		python3 -m pip install --quiet --disable-pip-version-check uv
	$(UV) sync --frozen --all-packages --all-groups
	@touch $@

install: $(STAMP)

## run: broker, database and all five services, a demo month, its sharing notice; Ctrl-C stops
run: install
	$(PY) deploy/dev/stack.py run

## up / down: the same platform in the background, for other tools to drive
up: install
	$(PY) deploy/dev/stack.py up

down:
	$(PY) deploy/dev/stack.py down

## test: every tier (domain, handler, integration, end-to-end) on the real broker and Postgres
test: install lint
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "domain or handler"

test-e2e: install
	$(PY) -m pytest -m e2e

## bench: throughput figures, written to docs/benchmarks.md
bench: install
	$(PY) benchmarks/foundation.py

## bench-membership: JoinPlan one by one and ImportMembers over Kafka into Postgres
bench-membership: install
	$(PY) benchmarks/membership_throughput.py

## bench-jury: 100,000 CastVote commands one by one over Kafka into one open-mode case
.PHONY: bench-jury
bench-jury: install
	$(PY) benchmarks/jury_votes.py

lint: install
	.venv/bin/ruff check .

clean:
	rm -rf .run .pytest_cache .hypothesis
