# The two commands the README promises. Both install what is missing first.
.PHONY: serve test bench build wheel

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

# dist/oxwsgi-<version>-cp311-cp311-linux_x86_64.whl: the `oxwsgi` command and the Apache module,
# for `pip install` into a virtualenv of Python 3.11 (setuptools-rust; see setup.py).
wheel:
	scripts/bootstrap
	scripts/build-wheel

# Unit tests, then integration tests against a real Apache.
test:
	scripts/bootstrap
	cargo build
	scripts/run-tests

bench:
	scripts/bootstrap
	bench/run
