# The two commands a newcomer needs: `make demo` and `make test`.
CARGO ?= cargo
PREFIX ?= $(HOME)/.local
TOOLS := wt-create wt-env wt-run wt-watch wt-merge wt-status

.PHONY: demo test lint bench install build

build:
	$(CARGO) build --workspace --bins

## demo: every tool that works today, on a throwaway repository
demo: build
	bash demo/demo.sh

## test: every test (the end-to-end tests run the binaries `build` makes, and wt-env's
## database tests a private PostgreSQL server that tests/pg-server.sh starts)
test: build
	WT_TEST_PG="$$(bash tests/pg-server.sh)" && export WT_TEST_PG && $(CARGO) test --workspace

## lint: formatting and clippy, as CI checks them
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## bench: side-by-side ratios against the reference tools, into bench/results.md
bench:
	bash bench/run.sh

## install: the binaries into $(PREFIX)/bin
install:
	$(CARGO) build --release --workspace --bins
	install -d $(PREFIX)/bin
	for t in $(TOOLS); do install -m 0755 target/release/$$t $(PREFIX)/bin/$$t; done
