# The two commands that do everything on a fresh Debian 12 machine:
#   make demo   set up, build, generate a sample BERT, optimize it, compare, measure
#   make test   set up, build, run all tests
BUILD ?= build
JOBS ?= $(shell nproc)
SIZE ?= base

.PHONY: all setup build test demo bench clean
all: build

setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	@bash scripts/demo.sh $(SIZE)

# Regenerates bench/RESULTS.md (bench/run.sh --quick for a short trial run).
bench: setup
	@BUILD=$(abspath $(BUILD)) bash bench/run.sh

clean:
	rm -rf $(BUILD)
