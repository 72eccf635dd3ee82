# mmml: `make demo` runs the main job, `make test` runs every test (core and each plugin).
# Both create .venv when it is missing and install mmml-core plus every plugin in editable
# mode under constraints.txt (the tested stack; pyproject files only declare ranges).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
PLUGINS := $(sort $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml)))
STAMP  := $(VENV)/.mmml-installed
PYTEST := $(PY) -m pytest -q -p no:cacheprovider --durations=10

.PHONY: install test test-fast demo lint clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt $(addsuffix /pyproject.toml,$(PLUGINS))
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt "setuptools>=77"  # PEP 639 license strings; venv ships 65
	$(PIP) install -q -c constraints.txt --no-build-isolation -e '.[test]' $(addprefix -e ,$(PLUGINS))
	@touch $(STAMP)

# Each test folder runs in its own pytest process: plugins are separate projects and may use
# the same test file names.
test: install
	@set -e; for dir in tests $(addsuffix /tests,$(PLUGINS)); do \
		echo "== $$dir"; $(PYTEST) $$dir; done

# Everything except the slow wheel/fresh-venv test.
test-fast: install
	@set -e; for dir in tests $(addsuffix /tests,$(PLUGINS)); do \
		echo "== $$dir"; $(PYTEST) -m "not slow" $$dir; done

demo: install
	$(VENV)/bin/mmml-bench --preset demo

lint: install
	$(VENV)/bin/ruff check src plugins tests benchmarks
	$(VENV)/bin/ruff format --check src plugins tests benchmarks

clean:
	rm -rf $(VENV) build dist runs src/*.egg-info plugins/*/src/*.egg-info
