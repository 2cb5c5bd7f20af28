#!/usr/bin/env bash
# Re-create the shipped tree, knowledge/papers13.json (+ .graphml), from the 13 papers with the default
# embedded model. Resumable: run it again after an interruption and it continues where it stopped.
#   bash scripts/build_shipped_tree.sh [PAPERS_FOLDER]   (default ../shared/papers)
set -euo pipefail
cd "$(dirname "$0")/.."
papers="${1:-../shared/papers}"
.venv/bin/fairnad knowledge build "$papers" --template templates/fairnad.yaml \
    --out knowledge/papers13.json --build-dir runs/knowledge-papers13
.venv/bin/fairnad knowledge stats knowledge/papers13.json
