# Everything a new machine needs: `make demo` and `make test` create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow test-systemd lint typecheck unit bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check monitor tests bench
	$(BIN)/ruff format --check monitor tests bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict monitor

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test: lint typecheck
	$(BIN)/pytest -q -m "not slow" -n 2

# The long variants (the 50,000-case entry fuzz, many processes racing on one database, the
# 20 s soak); `test` runs their short versions.
test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

# The shipped unit under a real systemd (docs/systemd.md#testing-the-unit-under-systemd): root, and
# network to Debian's mirror and PyPI the first time (the Debian root and the wheels are cached in
# /var/cache/tlog-monitor); skipped with the reason otherwise. `test` does not collect tests/systemd.
test-systemd: $(STAMP)
	TLOG_MONITOR_SYSTEMD_TEST=1 $(BIN)/pytest -q -rs tests/systemd

bench: $(STAMP)
	$(BIN)/python -m bench

# 30 minutes of `tlog-monitor run` against a log growing at 500 entries/s through a hostile
# proxy; prints the figures and fails if an invariant broke (tests/faults has 6 s and 20 s versions).
SOAK_MINUTES ?= 30
soak: $(STAMP)
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES)

demo: $(STAMP)
	$(BIN)/tlog-monitor demo

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
