# Lifeline: the two commands a newcomer needs are `make demo` and `make test`.
# Everything else (Foundry 1.7.1, solc, OpenZeppelin) is installed from the lockfile on demand.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

FOUNDRY_BIN := $(CURDIR)/node_modules/.bin
export PATH := $(FOUNDRY_BIN):$(PATH)
NPM_STAMP := node_modules/.lifeline-installed

.PHONY: help demo test deps deps-chromium test-solidity test-rust gas bench bench-transport bench-failover \
	bench-keeper-scale bench-gateway bench-faultmix bench-registry-halt bindings fmt clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

demo: deps ## A whole Lifeline on 127.0.0.1 (anvil, registry, proxies, keepers, client) and a scripted failover
	RUST_LOG=$${RUST_LOG:-warn} cargo run -p lifeline -- devnet

test: deps ## Everything CI runs: formatting, lints, Solidity and Rust tests, drift checks
	@mkdir -p target
	@$(MAKE) --no-print-directory test-solidity test-rust 2>&1 | tee target/test.log
	@tools/test-summary target/test.log

deps: $(NPM_STAMP) deps-chromium ## Install the npm toolchain (when package-lock.json changed) and Chromium (when missing)

# Chromium (Debian's package) for the status page's browser test; installed only as root. The
# test looks at LIFELINE_CHROMIUM or /usr/bin/chromium and fails, naming this command, without it.
CHROMIUM ?= $(or $(LIFELINE_CHROMIUM),/usr/bin/chromium)
deps-chromium:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "==> apt-get install chromium (the status page test drives it headless)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "==> Chromium is missing; the status page test needs it. Run:" \
			"sudo apt-get update && sudo apt-get install -y chromium"; \
	fi

$(NPM_STAMP): package.json package-lock.json
	@echo "==> npm ci (Foundry 1.7.1, solc, OpenZeppelin from package-lock.json)"
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

test-solidity: deps
	@echo "==> forge fmt --check"
	forge fmt --check
	@echo "==> forge build"
	forge build
	@echo "==> forge test (unit, security, fuzz, invariants: ci profile, 256 runs x depth 64)"
	FOUNDRY_PROFILE=ci forge test
	@echo "==> gas: isolated transactions, checked against snapshots/GasTest.json and budgets"
	FOUNDRY_PROFILE=gas FORGE_SNAPSHOT_CHECK=true forge test

# The bindings generator is a workspace of its own (see tools/codegen/Cargo.toml); it shares target/.
CODEGEN_MANIFEST := tools/codegen/Cargo.toml
CODEGEN_CARGO := --manifest-path $(CODEGEN_MANIFEST) --target-dir target

test-rust: deps
	@echo "==> cargo fmt --check"
	cargo fmt --all --check
	cargo fmt --manifest-path $(CODEGEN_MANIFEST) --check
	@echo "==> cargo clippy"
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy $(CODEGEN_CARGO) --all-targets -- -D warnings
	@echo "==> bindings drift check (contracts vs bindings/artifacts)"
	cargo run -q $(CODEGEN_CARGO) -- --check
	@echo "==> cargo test"
	cargo test --workspace

gas: deps ## Regenerate snapshots/GasTest.json (whole-transaction gas, cold storage)
	FOUNDRY_PROFILE=gas forge test

bench: bench-transport bench-failover bench-keeper-scale bench-gateway bench-faultmix bench-registry-halt ## Every benchmark (release build); JSON under target/bench/

bench-transport: deps ## Failover transport vs direct alloy HTTP -> target/bench/transport.json
	cargo bench -p lifeline-bindings --bench transport

bench-failover: deps ## Keeper-driven MTTR, 20 kills each at 250 ms / 1 s / 2 s blocks, three clients side by side -> target/bench/failover.json
	ulimit -n 8192 2>/dev/null || true; cargo bench -p lifeline --bench failover

bench-keeper-scale: deps ## One keeper probing 1,008 and 10,000 endpoints at 1 Hz -> target/bench/keeper-scale.json
	ulimit -n 65536 2>/dev/null || ulimit -n $$(ulimit -Hn) 2>/dev/null || true; cargo bench -p lifeline --bench keeper_scale

bench-gateway: deps ## Gateway vs direct vs a plain proxy; WS failovers -> target/bench/gateway.json
	ulimit -n 8192 2>/dev/null || true; cargo bench -p lifeline-gateway --bench gateway

bench-faultmix: deps ## Six clients through 50 seeded faults on 5 routes -> target/bench/faultmix.json
	ulimit -n 8192 2>/dev/null || true; cargo bench -p lifeline-gateway --bench faultmix

bench-registry-halt: deps ## The primary registry chain halts 10 times under two registries -> target/bench/registry-halt.json
	ulimit -n 8192 2>/dev/null || true; cargo bench -p lifeline --bench registry_halt

bindings: deps ## Regenerate bindings/artifacts from contracts/ (foundry-compilers + tools/solc)
	cargo run -q $(CODEGEN_CARGO)

fmt: deps ## Format Solidity and Rust
	forge fmt
	cargo fmt --all
	cargo fmt --manifest-path $(CODEGEN_MANIFEST)

clean: ## Remove build outputs (keeps node_modules)
	rm -rf out cache broadcast target/devnet
	cargo clean
