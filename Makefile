# The two commands the README promises. Both install what is missing first.
.PHONY: serve test test-suite bench build wheel test-distros test-distro

# The Python oxwsgi is built for, chosen here once: any CPython 3.11-3.14 the system has, e.g.
# `make build PYTHON=/usr/bin/python3.13`. The default is the distribution's /usr/bin/python3
# (the same default as .cargo/config.toml, so `make` and `cargo` builds share target/); build.rs
# resolves it to its versioned binary and the code, the command and the tests read it from there.
PYTHON ?= /usr/bin/python3
export PYTHON
export PYO3_PYTHON := $(PYTHON)

build:
	scripts/bootstrap
	cargo build --release

# Serves examples/hello.wsgi on http://127.0.0.1:8000/ (daemon mode, Ctrl-C to stop). The
# example is copied where Apache's www-data user can read it (this checkout may be under /root).
EXAMPLE_DIR ?= /tmp/oxwsgi-example
serve: build
	rm -rf $(EXAMPLE_DIR) && mkdir -p $(EXAMPLE_DIR) && cp -r examples/. $(EXAMPLE_DIR)/
	chmod -R a+rX $(EXAMPLE_DIR)
	target/release/oxwsgi serve $(EXAMPLE_DIR)/hello.wsgi --host 127.0.0.1 --port 8000 --url-alias /static $(EXAMPLE_DIR)/static

# dist/oxwsgi-<version>-cpXY-cpXY-linux_x86_64.whl: the `oxwsgi` command and the Apache module,
# for `pip install` into a virtualenv of $(PYTHON)'s version (setuptools-rust; see setup.py).
wheel:
	scripts/bootstrap
	scripts/build-wheel

# Unit tests, then integration tests against a real Apache: on this machine, then the same suite
# on Debian 13 (trixie, Python 3.13) in its debootstrap root (scripts/test-suites; the root needs
# root, `make test TEST_DISTROS=` skips it). Ends with one line per suite and a total,
# "N passed, N failed", last (what CI reads).
TEST_DISTROS ?= trixie
test:
	scripts/bootstrap
	cargo build
	scripts/test-suites $(TEST_DISTROS)

# This machine's suite only (what scripts/distro-root runs inside a root): ends with
# "tests: N passed, N failed, N skipped".
test-suite:
	scripts/bootstrap
	cargo build
	scripts/run-tests

bench:
	scripts/bootstrap
	bench/run

# The suite on other Debian releases (their Python and Apache), each in a root filesystem made
# with debootstrap and cached under target/distros/<name> (scripts/distro-root; needs root).
# Ends with one line per release: "trixie: tests: N passed, N failed, N skipped".
DISTROS ?= trixie forky
test-distros:
	@mkdir -p target; status=0; for d in $(DISTROS); do \
	  scripts/distro-root test $$d > target/distros-$$d.out 2>&1 || status=1; \
	  tail -n 1 target/distros-$$d.out; \
	done; exit $$status

test-distro:
	@test -n "$(DISTRO)" || { echo "usage: make test-distro DISTRO=trixie" >&2; exit 2; }
	scripts/distro-root test $(DISTRO)
