# lab-cnn: `make train` and `make test` set up everything they need (venv, packages, data).
PYTHON ?= python3
VENV ?= .venv
DATA_DIR ?= data
CONFIG ?= configs/baseline.yaml
PORT ?= 6006
STUDY ?= configs/studies/lab.yaml
SEEDS ?= 1
DEVICE ?= cpu
EPOCHS ?= 1
# Test files run two at a time, each file's tests in one process (its fixtures made once): much of a test
# is imports, files and waiting on a child process, and two at a time take the 2-core machine's both cores.
TEST_WORKERS ?= 2
BIN := $(VENV)/bin
LAB := $(BIN)/lab-cnn

.PHONY: help setup data browser train train-gpu test test-long lint study bench bench-study bench-setup bench-explore explore tensorboard clean distclean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## Create the venv (VENV, with PYTHON) if missing and install lab-cnn with its dev extra (by uv, with pip's settings)

# A new venv takes about 8.5 GB (torch's CUDA build and TensorFlow), and the installer unpacks beside it (uv
# into its cache, hard-linked into the venv on one file system): say so before it fails half-way for want of
# disk (measured on the folder the venv goes into, or the nearest that exists).
$(VENV)/.installed: pyproject.toml tools/install.py
	@test -x $(BIN)/python || $(PYTHON) -c "import pathlib, shutil, sys; p = pathlib.Path('$(VENV)').expanduser().absolute(); \
		free = shutil.disk_usage(next(d for d in (p, *p.parents) if d.exists())).free / 2**30; \
		sys.exit(f'make setup: a new venv needs about 12 GB of disk; {free:.1f} GB free here') if free < 12 else None"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python tools/install.py
	touch $@

data: setup ## Fetch MNIST into DATA_DIR/MNIST/raw and verify its MD5s
	$(LAB) data --data-dir $(DATA_DIR)

train: data ## Train the lab's PyTorch net (CONFIG, default configs/baseline.yaml) on the CPU, or the GPU when there is one
	$(LAB) fit --config $(CONFIG) --data.data_dir $(DATA_DIR)

train-gpu: data ## Train CONFIG on one GPU, 8 optimizer steps per Lightning step in a CUDA graph (configs/trainer/gpu.yaml)
	$(LAB) fit --config $(CONFIG) --config configs/trainer/gpu.yaml --data.data_dir $(DATA_DIR)

# The explorer's test drives Debian's chromium; CI starts from nothing, so make test installs it (as root).
browser: ## Install Debian's chromium and chromium-driver if missing (the explorer's browser test)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -q && apt-get install -y -q --no-install-recommends chromium chromium-driver; }

# The set-up's parts at once: apt-get's install of chromium beside pip's, mypy beside the data's unpacking
# (each part's output together where make can hold it: GNU make 4.0 and newer).
test: ## Lint, then run the fast test suite (not the tests marked slow or long; gpu ones need CUDA)
	$(MAKE) --no-print-directory -j3 $(if $(filter output-sync,$(.FEATURES)),--output-sync=target) lint data browser
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test-long: data ## Run the tests marked long: end-to-end checks of half a minute or more each (CI runs them after make test)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m long

lint: setup ## Check the code with ruff and mypy (their settings in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

study: data ## Run a study (STUDY, default configs/studies/lab.yaml; SEEDS, default 1) and write reports/<study>/
	$(LAB) study $(STUDY) --seeds $(SEEDS) --data-dir $(DATA_DIR)

bench: data ## Time lab-cnn against a plain loop, torchvision's loader and Keras (DEVICE=cpu|gpu, EPOCHS, default 1)
	$(BIN)/python -m benchmarks.bench --device $(DEVICE) --epochs $(EPOCHS) --data-dir $(DATA_DIR)

bench-study: data ## Time short lab-cnn and Keras studies with --workers 2 against --workers 1, and each run's training and overhead (EPOCHS, default 1)
	$(BIN)/python -m benchmarks.bench_study --epochs $(EPOCHS) --data-dir $(DATA_DIR)

bench-setup: setup ## Time make setup's install by uv (tools/install.py) against pip's, each into a new venv
	$(BIN)/python -m benchmarks.bench_setup

bench-explore: data ## Time one update of the explorer's page (model time) for the lab net and the Keras port
	$(BIN)/python -m benchmarks.bench_explore --data-dir $(DATA_DIR)

explore: data ## Serve the explorer of a run's checkpoint on 127.0.0.1 (CKPT, default the newest of CONFIG's runs)
	$(LAB) explore --config $(CONFIG) --ckpt_path $(or $(CKPT),last) --data-dir $(DATA_DIR)

tensorboard: setup ## Serve TensorBoard for lightning_logs/ on localhost (PORT, default 6006)
	@echo "TensorBoard: http://127.0.0.1:$(PORT)/"
	$(BIN)/tensorboard --logdir lightning_logs --host 127.0.0.1 --port $(PORT)

clean: ## Remove run outputs: lightning_logs/, models/, caches (not reports/)
	rm -rf lightning_logs models .pytest_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean ## Also remove the venv and the data
	rm -rf $(VENV) $(DATA_DIR)
