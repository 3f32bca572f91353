# The two Quickstart commands: `make demo` and `make test`. Both set up .venv first.
PY := .venv/bin/python

.PHONY: setup demo test lint wheel-check proto bench clean

setup:
	@scripts/setup.sh

demo: setup
	@.venv/bin/faultlab demo

test: setup
	@scripts/ensure-redis.sh
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy -p faultlab

# The wheel, installed into a fresh venv outside the checkout (as CI does).
wheel-check:
	@scripts/wheel-check.sh

proto: setup
	PATH=.venv/bin:$$PATH scripts/gen_proto.sh

bench: setup
	$(PY) bench/spine.py

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache
