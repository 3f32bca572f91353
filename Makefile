# The two Quickstart commands: `make demo` and `make test`. Both set up .venv first.
PY := .venv/bin/python

.PHONY: setup demo test lint proto bench clean

setup:
	@scripts/setup.sh

demo: setup
	@.venv/bin/faultlab demo

test: setup
	@scripts/ensure-redis.sh
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy faultlab server workers client

proto: setup
	PATH=.venv/bin:$$PATH scripts/gen_proto.sh

bench: setup
	$(PY) bench/spine.py

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache
