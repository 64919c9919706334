# One entry point for a fresh Debian/Ubuntu machine: `make demo` and `make test`
# install what they need (Debian packages when missing, a .venv with modelmon).

VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := prometheus prometheus-alertmanager docker-compose python3-venv postgresql victoria-metrics
NEEDED_BINARIES := prometheus promtool amtool docker-compose victoria-metrics vmalert

.PHONY: demo test test-slow lint readme system-deps venv deploy clean bench-serving

demo: system-deps venv
	$(VENV)/bin/modelmon demo

test: system-deps venv lint
	$(PY) -m pytest -m "not slow" --durations=15

# ruff (rules in pyproject.toml) and mypy --strict on src/; also run by `make test`.
lint: venv
	$(VENV)/bin/ruff check src tests benchmarks scripts examples
	$(VENV)/bin/mypy

test-slow: system-deps venv
	$(PY) -m pytest -m slow --durations=15

# Serving speed against `mlflow models serve` (BENCHMARKS.md); wrk drives, py-spy profiles.
bench-serving: venv
	@command -v wrk >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends wrk; }
	$(PY) -m pip install -q py-spy
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

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
