# Two commands set up a fresh machine: `make run` and `make test`. Both install what is
# missing first (uv from PyPI, then the locked workspace into .venv).
SHELL := /bin/bash
PY := .venv/bin/python
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
STAMP := .venv/.installed

.PHONY: install run up down test test-fast test-e2e bench bench-membership bench-billing bench-billing-roll lint clean promtool

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
	@[ -x .run/tools/promtool ] || $(MAKE) --no-print-directory promtool >/dev/null 2>&1 || \
		echo "promtool could not be fetched: the alert rule checks will be skipped"
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "domain or handler"

test-e2e: install
	$(PY) -m pytest -m e2e

## test-faults: the fault tests alone, larger (docs/reliability.md); FAULT_ROUNDS and FAULT_SEED
## size them (make test runs them with 10 kills, 12 connection-loss rounds, 2 replica rounds)
.PHONY: test-faults
test-faults: install
	FAULT_ROUNDS=$${FAULT_ROUNDS:-40} $(PY) -m pytest -m e2e -s tests/e2e/test_faults.py \
		tests/e2e/test_faults_runtime.py

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

## bench-billing-roll: billing's roll projection fed by membership events over Kafka
bench-billing-roll: install
	$(PY) benchmarks/roll_projection.py

## bench-billing: one sharded sharing run of 10 M members (1 then 2 workers) vs SQL alone
bench-billing: install
	$(PY) benchmarks/billing_run.py

## soak: every service under a steady load (default 10 minutes; MINUTES=30 for longer): throughput,
## p50/p99 command-to-outcome latency, memory per service, no lost or doubled outcome; written to
## docs/benchmarks.md; not part of `make test`
.PHONY: soak
soak: install
	$(PY) benchmarks/soak.py $(if $(MINUTES),--minutes $(MINUTES))

## docs: the AsyncAPI document of every service (docs/asyncapi/) and docs/events.md, from the
## code; tests/unit/test_docs.py fails when they are out of date
.PHONY: docs
docs: install
	$(PY) -m mutualaid.cli.docs

lint: install
	.venv/bin/ruff check .

## promtool: Prometheus's rule checker, from Debian's prometheus package, into .run/tools;
## `make test` then also runs `promtool check rules` and the alert unit tests
promtool: .run/tools/promtool

.run/tools/promtool:
	@mkdir -p .run/tools/deb
	cd .run/tools/deb && (apt-get download prometheus || (apt-get update -qq && apt-get download prometheus))
	dpkg-deb -x .run/tools/deb/prometheus_*.deb .run/tools/deb/root
	cp .run/tools/deb/root/usr/bin/promtool $@
	rm -rf .run/tools/deb
	$@ --version

clean:
	rm -rf .run .pytest_cache .hypothesis
