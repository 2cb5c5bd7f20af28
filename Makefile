# Two entry points (see README): `make demo` and `make test`. Both set up .venv first.
.PHONY: setup demo test tree

setup:
	@bash scripts/setup.sh

# one fresh answer per failing child instead of two: a failed answer costs another ~30 s call on 2 cores,
# and the demo should end in under 10 minutes (docs/performance.md); searches keep the default of 2.
# Then the same search without the LLM (--llm none, the same seed and budget, about a minute): its one line
# is the baseline the LLM's figure stands beside.
define NONE_LINE
import json, sys
s = json.load(sys.stdin); b = s["best"]
print(f"without the LLM (--llm none, same seed and budget): best {b['search_accuracy']:.2f}% validation, {b['accuracy']:.2f}% test, {b['params']:,} params, {s['seconds']:.0f} s ({s['run_dir']})")
endef
export NONE_LINE

demo: setup
	.venv/bin/fairnad search --space open --dataset mnist1d --strategy fairnad --budget 10 --epochs 5 \
		--set strategies.fairnad.retries=1
	@.venv/bin/fairnad search --space open --dataset mnist1d --strategy fairnad --budget 10 --epochs 5 --llm none \
		--json 2>/dev/null | .venv/bin/python -c "$$NONE_LINE"

test: setup
	.venv/bin/python -m pytest -n 2

# the shipped attribute tree from ../shared/papers with the default embedded model (resumable)
tree: setup
	bash scripts/build_shipped_tree.sh
