# Every target sets up what it needs: the venv from requirements*.txt, the
# pinned CDK CLI from package.json, and ffmpeg through apt when missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup synth test lint demo bench clean

setup: $(VENV)/.installed node_modules/.installed ffmpeg

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: ffmpeg
ffmpeg:
	@scripts/ensure-ffmpeg.sh

synth: setup
	$(CDK) synth --no-notices -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

test: setup lint
	$(PY) -m pytest

demo: synth
	$(PY) -m local.summary cdk.out

bench: setup
	$(PY) bench/synth.py

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache
