# Development entry points. `make demo` and `make test` are the README's quick start.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: venv demo demo-quick test test-all lint typecheck bench clean

$(BIN)/forgetless: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev,formats,eval,plan,lora,gguf,tensorboard,wandb,mlflow]"
	@touch $@

venv: $(BIN)/forgetless

demo: venv
	$(BIN)/forgetless demo

demo-quick: venv
	$(BIN)/forgetless demo --quick

test: venv
	$(BIN)/python -m pytest

test-all: venv
	$(BIN)/python -m pytest -m ""

lint: venv
	$(BIN)/ruff check src tests benchmarks scripts tools

typecheck: venv
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache
