# One entry point for a fresh Debian/Ubuntu machine: `make demo` and `make test`
# install what they need (Debian packages when missing, a .venv with modelmon).

VENV ?= .venv
PY := $(VENV)/bin/python
# uv installs the venv from uv.lock (the versions CI passed on); it is itself installed with pip,
# at this version, into a folder of its own. The lock is updated with `make lock`.
UV_VERSION := 0.13.9
UV := build/uv/bin/uv
# uv never downloads a Python: the machine's python3 makes the venvs. It trusts the system's
# certificate store, as pip and apt do (its own bundled roots miss a site's or proxy's CA).
export UV_PYTHON_DOWNLOADS := never
export UV_SYSTEM_CERTS := 1
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := prometheus prometheus-alertmanager docker-compose python3-venv postgresql victoria-metrics
NEEDED_BINARIES := prometheus promtool amtool docker-compose victoria-metrics vmalert

.PHONY: demo test test-slow test-latest lint lock readme system-deps venv deploy clean bench-serving

demo: system-deps venv
	$(VENV)/bin/modelmon demo

# Four pytest workers (pytest-xdist) on two cores: most integration tests wait on real processes
# and clocks, so their waits overlap the CPU-bound tests. `make test PYTEST_WORKERS=0`: one process.
PYTEST_WORKERS ?= 4
test: system-deps venv lint
	$(PY) -m pytest -m "not slow" -n $(PYTEST_WORKERS) --durations=15

# ruff (rules in pyproject.toml), mypy --strict on src/, and the import contract (the
# subpackages' layers, no circles: [tool.importlinter] in pyproject.toml); also run by `make test`.
lint: venv
	$(VENV)/bin/ruff check src tests benchmarks scripts examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test-slow: system-deps venv
	$(PY) -m pytest -m slow --durations=15

# Serving speed against `mlflow models serve` (BENCHMARKS.md); wrk drives, py-spy profiles.
bench-serving: venv
	@command -v wrk >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends wrk; }
	$(UV) pip install --quiet --python $(PY) py-spy
	$(PY) benchmarks/serving.py $(ARGS)

readme: venv
	$(PY) scripts/readme.py

deploy: venv
	$(VENV)/bin/modelmon stack render --out deploy
	$(VENV)/bin/modelmon stack render --target kubernetes --out deploy/kubernetes

system-deps:
	@missing=""; \
	for b in $(NEEDED_BINARIES); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 || missing="$$missing alertmanager"; \
	python3 -c "import ensurepip, venv" 2>/dev/null || missing="$$missing python3-venv"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	extra=""; command -v kubectl >/dev/null 2>&1 || { missing="$$missing kubectl"; extra="kubernetes-client"; }; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages (missing:$$missing)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) $$extra; \
	fi

venv: $(VENV)/.installed

$(UV):
	python3 -m venv build/uv
	build/uv/bin/python -m pip install -q uv==$(UV_VERSION)

# Exactly what uv.lock says (--frozen: the lock is read, never re-resolved), modelmon editable.
$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --extra test --python python3 --quiet
	touch $@

# After changing dependencies in pyproject.toml: re-resolve uv.lock (commit it with the change);
# `make lock ARGS=--upgrade` moves every package to its newest allowed release.
lock: | $(UV)
	$(UV) lock --python python3 $(ARGS)

# The newest releases pyproject.toml allows, in a venv of their own, against the unit tests:
# a breaking release is found here before a user installs it.
LATEST_VENV := .venv-latest
test-latest: system-deps | $(UV)
	rm -rf $(LATEST_VENV)
	$(UV) venv --quiet --python python3 $(LATEST_VENV)
	$(UV) pip install --quiet --python $(LATEST_VENV)/bin/python --resolution highest -e '.[test]'
	$(UV) pip list --python $(LATEST_VENV)/bin/python --format freeze > $(LATEST_VENV)/versions.txt
	$(LATEST_VENV)/bin/python -m pytest -m "not slow and not integration" --durations=10

clean:
	rm -rf $(VENV) $(LATEST_VENV) .pytest_cache build src/*.egg-info
