# The two commands a newcomer needs: `make demo` and `make test`.
CARGO ?= cargo
PREFIX ?= $(HOME)/.local
TOOLS := wt-create wt-env wt-run wt-watch wt-merge wt-status

.PHONY: demo test soak lint bench install build

build:
	$(CARGO) build --workspace --bins

## demo: every tool that works today, on a throwaway repository (its prerequisites checked
## first: what is missing is named with its Debian package, before anything is built)
demo:
	@bash tests/prereqs.sh demo
	$(CARGO) build --workspace --bins
	bash demo/demo.sh

## test: its prerequisites checked first (as for demo), then every test (the end-to-end tests
## run the binaries `build` makes, and wt-env's database tests a private PostgreSQL server that
## tests/pg-server.sh starts), then the soak test on its own, so that the rest of the suite does
## not share its load. A soak that fails fails the run: what it found is a crash window to fix,
## never a flake to retry.
test:
	@bash tests/prereqs.sh test
	$(CARGO) build --workspace --bins
	WT_TEST_PG="$$(bash tests/pg-server.sh)" && export WT_TEST_PG && $(CARGO) test --workspace
	$(MAKE) --no-print-directory soak

## soak: 20 processes under random SIGKILL for 60 s (WT_SOAK_SECS; CI runs 300), then a
## consistency check. `--workspace --test soak`, not `-p wt-tests`: cargo unifies the features
## of shared dependencies over the packages it is asked to build, so `-p wt-tests` alone asks
## for other features than `cargo test --workspace` did (nix without `net`, memchr and syn
## without their defaults) and rebuilt those and every crate above them, about 30; with
## `--workspace` the soak reuses what `make test` just built.
soak: build
	WT_TEST_PG="$$(bash tests/pg-server.sh)" && export WT_TEST_PG && $(CARGO) test --workspace --test soak -- --ignored --nocapture

## lint: formatting and clippy, as CI checks them
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## bench: side-by-side ratios against the reference tools, into bench/results.md
bench:
	bash bench/run.sh

## install: the binaries into $(PREFIX)/bin, their man pages and bash/zsh/fish completions
## under $(PREFIX)/share (an optimized build without debug info: the `dist` profile)
install:
	$(CARGO) build --profile dist --workspace --bins
	rm -rf target/dist/docs && target/dist/wt-docgen target/dist/docs
	install -d $(PREFIX)/bin $(PREFIX)/share/man/man1 $(PREFIX)/share/bash-completion/completions \
		$(PREFIX)/share/zsh/site-functions $(PREFIX)/share/fish/vendor_completions.d
	for t in $(TOOLS); do install -m 0755 target/dist/$$t $(PREFIX)/bin/$$t; done
	install -m 0644 target/dist/docs/man/*.1 $(PREFIX)/share/man/man1/
	for f in target/dist/docs/completions/bash/*.bash; do \
		install -m 0644 $$f $(PREFIX)/share/bash-completion/completions/$$(basename $$f .bash); done
	install -m 0644 target/dist/docs/completions/zsh/_* $(PREFIX)/share/zsh/site-functions/
	install -m 0644 target/dist/docs/completions/fish/*.fish $(PREFIX)/share/fish/vendor_completions.d/
