# The two commands that do everything on a fresh Debian 12 machine:
#   make demo   set up, build, generate a sample BERT, optimize it, compare, measure
#   make test   set up, build, run all tests
#   make test-long   the same with more mutants per model in the mutation tests
BUILD ?= build
JOBS ?= $(shell nproc)
SIZE ?= base

PYVENV ?= $(BUILD)/venv
# Mutants per model for make test-long (make test: 48, see tests/e2e/mutation_test.cc).
MUTATIONS ?= 400

.PHONY: all setup build test test-long test-python test-large test-ort130 test-asan fuzz demo bench clean
all: build

setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@$(MAKE) --no-print-directory test-python
	@echo "make test: skipped the model over 2 GB (external data, ~5 GB of disk, minutes): run it with 'make test-large'"

# A BERT over protobuf's 2 GB limit, with external data, end to end (tests/large/run.sh): load,
# fuse completely, save with external data, compare through ORT; then SIGINT / SIGTERM at every
# stage of a BERT-large optimize leave nothing behind (tests/large/signals.sh). Not part of
# `make test` (CI).
test-large: build
	@BUILD=$(abspath $(BUILD)) bash tests/large/run.sh
	@BUILD=$(abspath $(BUILD)) bash tests/large/signals.sh

test-long: build
	@cd $(BUILD) && BERTOPT_MUTATIONS=$(MUTATIONS) ctest --output-on-failure -j $(JOBS)
	@$(MAKE) --no-print-directory test-python

# The Python package installed with pip install . into a venv under build/, tested against PyPI
# onnxruntime's optimize_model. Its build tools live in the venv (no build isolation), so the
# CMake build in build/python stays valid and a rerun only compiles what changed; a plain
# `pip install .` (isolated) builds the same way from scratch.
test-python: setup
	@test -x $(PYVENV)/bin/pip || /usr/bin/python3 -m venv $(PYVENV)
	@$(PYVENV)/bin/pip install -q --disable-pip-version-check scikit-build-core pybind11 \
	    pytest numpy sympy onnx onnxruntime==1.32.0
	@$(PYVENV)/bin/pip install -q --disable-pip-version-check --no-build-isolation .
	@cd $(BUILD) && BERTOPT_CLI=$(abspath $(BUILD))/bertopt \
	    $(abspath $(PYVENV))/bin/python -m pytest -q -rs -p no:cacheprovider $(CURDIR)/tests/python

# The whole suite built against ONNX Runtime 1.30 (its library with the 1.29 headers, same C API).
test-ort130:
	@bash scripts/setup.sh --ort130
	@cmake -S . -B $(BUILD)-ort130 -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBERTOPT_BUILD_BENCH=OFF \
	    -DONNXRUNTIME_ROOT=$(CURDIR)/third_party/ort-1.30 >/dev/null
	@cmake --build $(BUILD)-ort130 -j $(JOBS)
	@cd $(BUILD)-ort130 && ctest --output-on-failure -j $(JOBS)

# The whole ctest suite (unit + end-to-end, the bertopt processes they start included) built with
# AddressSanitizer and UndefinedBehaviorSanitizer in $(BUILD)-asan; any report fails its test.
# The exit code 86 tells a sanitizer report from the CLI's own codes 1 and 2, which tests expect.
# tests/sanitizers/lsan.supp: leaks inside the uninstrumented ONNX Runtime. The Python tests do
# not run here (their extension module is not instrumented).
SANITIZER_ENV = ASAN_OPTIONS=exitcode=86:detect_leaks=1:check_initialization_order=1 \
    UBSAN_OPTIONS=exitcode=86:halt_on_error=1:print_stacktrace=1 \
    LSAN_OPTIONS=exitcode=86:suppressions=$(CURDIR)/tests/sanitizers/lsan.supp:print_suppressions=0
test-asan: setup
	@cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBERTOPT_SANITIZE=ON \
	    -DBERTOPT_BUILD_BENCH=OFF >/dev/null
	@$(SANITIZER_ENV) cmake --build $(BUILD)-asan -j $(JOBS)
	@cd $(BUILD)-asan && $(SANITIZER_ENV) ctest --output-on-failure -j $(JOBS)

# Each libFuzzer target (fuzz/) for FUZZ_SECONDS; bench/fuzz.sh says more.
FUZZ_SECONDS ?= 60
fuzz:
	@bash bench/fuzz.sh $(FUZZ_SECONDS)

demo: build
	@bash scripts/demo.sh $(SIZE)

# Regenerates bench/RESULTS.md (bench/run.sh --quick for a short trial run).
bench: setup
	@BUILD=$(abspath $(BUILD)) bash bench/run.sh

clean:
	rm -rf $(BUILD)
