# Two entry points (see README): `make demo` and `make test`. Both set up .venv first.
.PHONY: setup demo test tree

setup:
	@bash scripts/setup.sh

# one fresh answer per failing child instead of two: a failed answer costs another ~30 s call on 2 cores,
# and the demo should end in under 10 minutes (docs/performance.md); searches keep the default of 2
demo: setup
	.venv/bin/fairnad search --space open --dataset mnist1d --strategy fairnad --budget 10 --epochs 5 \
		--set strategies.fairnad.retries=1

test: setup
	.venv/bin/python -m pytest -n 2

# the shipped attribute tree from ../shared/papers with the default embedded model (resumable)
tree: setup
	bash scripts/build_shipped_tree.sh
