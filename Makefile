# Two commands do all the set-up: `make run` (the demo) and `make test`.
# Both create the virtual environment and install what is needed on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHELL := bash
.SHELLFLAGS := -o pipefail -c
# Machines whose pip.conf lists local mirror folders make pip warn, for every package a
# folder lacks, that the folder "is ignored"; that is about the machine, not this install.
# Every other warning and error still shows, and a failed install still fails.
PIP_QUIET := { grep -v "^WARNING: Location 'file://.*' is ignored: it is neither a file nor a directory" || true; }

.PHONY: run test test-cluster lint bench chaos fair browser worker mock clean

# `make run` installs what dispatcher needs; the test tools (schemathesis, playwright, …)
# come with the first `make test` or other target that uses them.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2>&1 | $(PIP_QUIET)
	$(PY) -m pip install --quiet -e . 2>&1 | $(PIP_QUIET)
	touch $@

# The bench extra (arq, SAQ, matplotlib) too: the tests run the benchmark's peers and plot.
$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test,bench]' 2>&1 | $(PIP_QUIET)
	touch $@

run: $(VENV)/.installed
	$(PY) -m dispatcher run

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check dispatcher tests benchmarks
	$(VENV)/bin/ruff format --check dispatcher tests benchmarks
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest

# The tests marked `cluster` against a real local Redis Cluster (3 valkey-server primaries
# on loopback, tests/cluster.py) instead of the single private server: the same tests,
# with `redis_url` naming the cluster (DISPATCHER_TEST_CLUSTER=1, see tests/conftest.py).
test-cluster: $(VENV)/.installed-test
	DISPATCHER_TEST_CLUSTER=1 $(PY) -m pytest -m cluster

# Throughput against the bare clients and the arq and SAQ peers (3 interleaved rounds),
# rate use, worker memory over 1,000,000 recipients, Redis bytes per recipient (side by
# side with the layout before rows.py) and streaming enqueue; then the picture,
# benchmarks/results/bench.png, beside the JSON.
bench: $(VENV)/.installed-test
	$(PY) -m benchmarks.bench_send
	$(PY) -m benchmarks.bench_rate
	$(PY) -m benchmarks.bench_memory
	$(PY) -m benchmarks.bench_storage
	$(PY) -m benchmarks.bench_enqueue
	$(PY) -m benchmarks.plot

worker: $(VENV)/.installed
	$(PY) -m dispatcher worker

mock: $(VENV)/.installed
	$(PY) -m dispatcher mock

clean:
	rm -rf $(VENV) .dispatcher *.egg-info .pytest_cache .mypy_cache .ruff_cache

# Unknown fate under fire: 50,000 recipients per provider with workers SIGKILLed every
# 2-5 s, and recovery beside fresh work (about 25 minutes; CI runs it after `make test`).
chaos: $(VENV)/.installed-test
	$(PY) -m benchmarks.chaos

# Fair share across accounts and campaigns, and rate use (four processes, two providers:
# ≥ 0.95 of the rate, none over), measured (about 11 minutes; CI runs it too).
fair: $(VENV)/.installed-test
	$(PY) -m benchmarks.fair
	$(PY) -m benchmarks.bench_rate

# The web console in a real browser: Debian's chromium (/usr/bin/chromium), never a
# downloaded one; fails rather than skips where it is missing (CI installs it).
browser: $(VENV)/.installed-test
	DISPATCHER_REQUIRE_BROWSER=1 $(PY) -m pytest tests/test_console_routes.py tests/e2e/test_console.py
