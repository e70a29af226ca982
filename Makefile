# meddx: two commands do the job on a fresh machine: `make repro` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
# The real-data mirror: an explicit MEDDX_DATA_MIRROR wins; else ../shared/data when it is there.
MEDDX_DATA_MIRROR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export MEDDX_DATA_MIRROR
SEEDS ?= 0 1 2
export SEEDS

.PHONY: setup repro test lint format params ui clean lock bench bench-numerics bench-data bench-cnn bench-protocol bench-overhead bench-rnn bench-qrs bench-hpo bench-gan bench-fuzz bench-soak bench-mlflow-ui bench-serve bench-cnn3d bench-seg bench-repro

setup: $(STAMP) ## Create .venv and install the locked dependencies (a no-op when done)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]' \
	  2>&1 | { grep -v '^WARNING: Location' || true; }
	touch $(STAMP)

repro: setup ## Run the whole pipeline (offline default unless params.yaml says otherwise)
	MEDDX_PIPELINE_ID=$${MEDDX_PIPELINE_ID:-repro-$$(date -u +%Y%m%dT%H%M%SZ)} $(BIN)/dvc repro

test: setup ## Run the test suite (slow tests included)
	$(BIN)/python -m pytest -q --durations=15

lint: setup ## ruff, then the import contracts of pyproject.toml (the layers of src/meddx)
	$(BIN)/ruff check src tests benchmarks notebooks
	$(BIN)/ruff format --check src tests benchmarks notebooks
	$(BIN)/lint-imports --no-cache

format: setup
	$(BIN)/ruff format src tests benchmarks notebooks
	$(BIN)/ruff check --fix src tests benchmarks notebooks

params: setup ## Recompose params.yaml from conf/ (what `dvc exp run` does)
	$(BIN)/python -m meddx compose --output params.yaml

ui: setup ## MLflow UI on the project's store
	@echo "Open http://127.0.0.1:5000/#/experiments?workflowType=machine_learning (MLflow 3.17 opens its GenAI view in a new browser otherwise)"
	$(BIN)/mlflow ui --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db}" --host 127.0.0.1 --port 5000

lock: ## Re-resolve the dependencies and rewrite requirements.lock
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -e '.[dev]'
	{ echo "# Exact versions of every package meddx installs (pip constraints; regenerate with 'make lock')."; \
	  .lock-venv/bin/pip freeze --exclude-editable | grep -v '^meddx'; } > requirements.lock
	rm -rf .lock-venv

bench: bench-data bench-cnn bench-protocol bench-overhead bench-hpo

bench-data: setup
	$(BIN)/python benchmarks/bench_data.py
	$(BIN)/python benchmarks/bench_ecg.py

bench-cnn: setup
	$(BIN)/python benchmarks/bench_cnn.py

bench-cnn3d: setup ## AdrenalMNIST3D recipe (SEEDS; JOBS at a time) + 3-D ResNet-18 throughput: reports/benchmarks/cnn3d.md
	$(BIN)/python benchmarks/bench_throughput3d.py
	$(BIN)/python benchmarks/bench_cnn3d.py

bench-protocol: setup ## MedMNIST v2 ResNet-18 (28) protocol on BreastMNIST beside the paper's row
	$(BIN)/python benchmarks/bench_protocol.py

bench-overhead: setup
	$(BIN)/python benchmarks/bench_overhead.py

bench-rnn: setup ## MIT-BIH inter-patient recipe on the mirror, one run per seed in SEEDS
	$(BIN)/python benchmarks/bench_rnn.py

bench-qrs: setup ## the R-peak detector of `predict` on all 48 MIT-BIH records (Se, +P within 150 ms)
	$(BIN)/python benchmarks/bench_qrs.py

bench-mlflow-ui: setup ## headless Chromium screenshots of the MLflow UI on a fresh offline `dvc repro` store
	command -v chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }
	$(BIN)/python benchmarks/mlflow_ui_screenshots.py $(if $(PROJECT),--project $(PROJECT),)

.PHONY: ci-repro ci-diff
ci-repro: setup ## Rebuild the pipeline (dvc repro --force); fail unless every committed metric is reproduced
	$(BIN)/python -m meddx.repro_check

BASE ?= main
ci-diff: setup ## Markdown summary of params, metrics and plots against BASE (a pull request's CI summary)
	@echo "### Params against $(BASE)"; $(BIN)/dvc params diff $(BASE) --md
	@echo "### Metrics against $(BASE)"; $(BIN)/dvc metrics diff $(BASE) --md --all
	@$(BIN)/dvc plots diff $(BASE) --out dvc_plots > /dev/null
	@echo "Plots against $(BASE): dvc_plots/index.html (the plots-diff artifact in CI)"

bench-hpo: setup ## Pruned vs unpruned study, 1 vs 2 workers, on PneumoniaMNIST (long: ~1 h on 2 cores)
	$(BIN)/python benchmarks/bench_hpo.py
bench-gan: setup ## GAN: TSTR, augmentation gain, FD, memorisation (SEEDS, DATASETS; not in `bench`: ~1 h)
	$(BIN)/python benchmarks/bench_gan.py
bench-repro: setup ## Offline `dvc repro --force` timed per stage (wall, CPU, load): reports/benchmarks/repro_time.md
	$(BIN)/python benchmarks/bench_repro.py
bench-seg: setup ## HC18 (2-D) and MSD Hippocampus (3-D) UNets from the mirror: Dice, HD95, HC and volumes (SEEDS, DATASETS; ~15 min per training)
	$(BIN)/python benchmarks/bench_seg.py

clean: ## Remove outputs, tracking stores and caches (not the venv)
	rm -rf data/raw data/processed models reports/metrics reports/plots runs mlflow.db mlartifacts optuna.db optuna.journal dvc_plots .pytest_cache .ruff_cache
bench-numerics: setup ## portable vs native numerics: offline pipeline and one pneumonia epoch (target ratio <= 1.15)
	$(BIN)/python benchmarks/bench_numerics.py
bench-fuzz: setup ## The reader fuzz tests at SCALE (default 10) times their budget; cases per reader
	$(BIN)/python benchmarks/fuzz_readers.py
bench-soak: setup ## 50 short stage runs in a row against one MLflow store (loopback): failures, size, drift
	$(BIN)/python benchmarks/soak.py
bench-serve: setup ## `mlflow models serve` latency (p50, p95) and `predict` images/s, PneumoniaMNIST
	$(BIN)/python benchmarks/bench_serve.py
