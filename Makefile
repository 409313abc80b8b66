.PHONY: serve install test lint bench

# Install dtr into .venv and run it on 127.0.0.1:5000 (embedded Postgres, filesystem storage).
serve: install
	.venv/bin/dtr serve $(if $(CONFIG),--config $(CONFIG),)

install:
	@[ -x .venv/bin/python ] || python3 -m venv .venv
	.venv/bin/pip install -q --disable-pip-version-check -e .

# Install what the tests need (Debian packages, Python deps) and run lint, types and the whole suite.
test:
	scripts/test.sh

lint:
	.venv/bin/ruff check dtr tests bench migrations
	.venv/bin/mypy

# dtr against the reference registry on this machine; results in bench/results/. BENCH_ARGS=--quick for a short run.
bench:
	bench/install.sh
	.venv/bin/python bench/run.py --skip-install $(BENCH_ARGS)
