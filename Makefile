# Two entry points for a fresh machine (Python 3.11):
#   make run   - create .venv, install, run the main job (training flow on the embedded default data)
#   make test  - create .venv, install, run the test suite
# torch is installed FIRST and pinned: an unpinned `torch` would pull a multi-GB CUDA build.

PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

# telemetry is switched off by the code itself (capmix/telemetry.py, on importing flows/ or capmix.cli,
# and in tests/conftest.py): nothing here reaches the internet at run time
export NUMBA_CACHE_DIR := $(CURDIR)/.numba_cache

.PHONY: install run test bench gpu-bundle clean

$(STAMP): requirements/lock.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -r requirements/lock.txt
	$(BIN)/pip install --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m flows.train

test: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python bench/bench_dtw.py
	$(BIN)/python bench/bench_train.py

# what bench/gpu_check.py needs on a CUDA machine without package or data access (Python 3.12,
# x86-64, torch and numba installed there): the wheels pinned in requirements/lock.txt that it lacks,
# and the archive's longest UCR series, into .gpu/ (git-ignored; the device command is in the script)
GPU_WHEELS := pydantic pydantic_core annotated-types typing-inspection stumpy
# the tests' real-data root
DATA_ROOT  ?= $(or $(CAPMIX_DATA_ROOT),../shared/datasets)
gpu-bundle:
	$(PY) -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu \
	  $$(grep -i -E '^($(shell echo $(GPU_WHEELS) | tr ' ' '|'))==' requirements/lock.txt)
	cp $(DATA_ROOT)/ucr/all_250/240_UCR_Anomaly_*.txt.xz .gpu/

# only what make and the pipeline build: metrics/ and plots/ are tracked (DVC keeps them in git)
clean:
	rm -rf $(VENV) .numba_cache .capmix_work mlruns mlflow.db mlflow.db.*.lock models runs
