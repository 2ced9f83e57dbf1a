# The two commands a newcomer runs: `make demo` and `make test`. Both install what is missing
# (Debian packages, then a virtual environment in .venv) and are quick when nothing is.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS := train,serve,audio,events,nir,dev
# Debian packages: PortAudio for sounddevice, espeak-ng to synthesise speech, sox for audio tools.
APT_PACKAGES := libportaudio2 espeak-ng sox
BENCH_VENV := .venv-bench
PYTEST_ARGS ?=

.PHONY: demo test lint format install system-deps protos bench clean

demo: install
	$(VENV)/bin/eventsp demo

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

install: system-deps $(STAMP)

system-deps:
	@missing=""; \
	for pkg in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "install ok installed" \
	    || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "eventsp needs Python 3.11 or newer; set PYTHON=python3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

# Regenerate the committed gRPC/protobuf modules from protos/ (tests check they are fresh).
protos: install
	$(PY) protos/generate.py

# Benchmarks run in their own environment with the peer libraries (snnTorch, Norse,
# SpikingJelly, sinabs); they are not tests and print ratios against those peers.
$(BENCH_VENV)/.installed: pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e ".[train,serve,audio,nir,bench]"
	touch $@

bench: system-deps $(BENCH_VENV)/.installed
	@for script in bench/*.py; do \
	  echo "== $$script"; $(BENCH_VENV)/bin/python $$script || exit 1; \
	done

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
