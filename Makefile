# The two commands the README promises. Both install what is missing first.
.PHONY: serve test bench build

build:
	scripts/bootstrap
	cargo build --release

# Serves examples/hello.wsgi on http://127.0.0.1:8000/ (daemon mode, Ctrl-C to stop).
serve: build
	target/release/oxwsgi serve examples/hello.wsgi --host 127.0.0.1 --port 8000

# Unit tests, then integration tests against a real Apache.
test:
	scripts/bootstrap
	cargo build
	cargo test --no-fail-fast

bench:
	scripts/bootstrap
	bench/run
