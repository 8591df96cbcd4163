# Every target sets up what it needs: the venv from requirements*.txt (and
# the `vod` CLI), the pinned CDK CLI and web bundle deps from package.json,
# and ffmpeg and chromium through apt when missing (Debian, as root).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup synth test lint demo demo-serve summary bench clean

setup: $(VENV)/.installed node_modules/.installed ffmpeg chromium web/dist/index.html

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: ffmpeg chromium
ffmpeg:
	@scripts/ensure-package.sh ffmpeg ffmpeg ffprobe

# Headless browser for the browser test (Playwright drives the system build).
chromium:
	@scripts/ensure-package.sh chromium chromium

web/dist/index.html: web/build.mjs web/index.html $(wildcard web/src/*) client/video_types.json node_modules/.installed
	npm run --silent build:web

synth: setup
	$(CDK) synth --no-notices -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

test: setup lint
	$(PY) -m pytest

# The whole pipeline locally from cdk.out: `make demo FILE=path/to/video`
# uploads your file instead of a generated clip; `WEB_PORT=8080` serves the
# page on that port (default 8787), whose origin the local run then allows.
WEB_PORT ?= 8787
demo: synth
	$(PY) -m local.demo --web-port $(WEB_PORT) $(if $(FILE),--file "$(FILE)")

# The local platform without the upload, for manual use.
demo-serve: synth
	$(PY) -m local.demo --no-wait --web-port $(WEB_PORT)

summary: synth
	$(PY) -m cdk_app.summary cdk.out

bench: setup
	$(PY) bench/synth.py
	$(PY) bench/sign.py
	$(PY) bench/transcode.py
	$(PY) bench/upload.py
	$(PY) bench/parallel.py

clean:
	rm -rf cdk.out .demo web/dist .pytest_cache .mypy_cache .ruff_cache
