# podcite: two commands.
#   make run    set up, index corpus/ (only when there is no index yet), and serve
#               on http://127.0.0.1:8000; an index you built is never replaced
#   make test   set up, lint, type-check and run the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
INDEX  ?= data/index
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup run ingest serve test lint bench clean

setup: $(STAMP)

# torch first, pinned, so pip takes the CPU build (sentence-transformers would
# otherwise pull a multi-GB CUDA one).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

ingest: $(STAMP)
	PODCITE_INDEX_DIR=$(INDEX) $(BIN)/podcite ingest corpus

# The index as a file target: built from corpus/ only when it does not exist.
$(INDEX): | $(STAMP)
	PODCITE_INDEX_DIR=$(INDEX) $(BIN)/podcite ingest corpus

run: $(STAMP) | $(INDEX)
	PODCITE_INDEX_DIR=$(INDEX) $(BIN)/podcite serve

serve: $(STAMP)
	PODCITE_INDEX_DIR=$(INDEX) $(BIN)/podcite serve

lint: $(STAMP)
	$(BIN)/ruff check ingest index server tests eval bench
	$(BIN)/ruff format --check ingest index server tests eval bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
