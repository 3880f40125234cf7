#!/usr/bin/env bash
# The check that a new engine version (a new random stream) left the statistics as they were:
# `kdlab run mythical-digit --seed S` for teacher seeds 0-4 under the engine before (commit
# 60a8786, the tag engine-1, in a worktree of its own) and under this checkout, one run at a time, then
# `python -m kdlab.reporting.engines` over the five runs of each into
# docs/performance/engines.md. A study has one teacher, and its students inherit that
# teacher's luck, so the engines are compared over several teachers, run by run: ten runs of
# 3-12 minutes each on 2 cores; a rerun reuses the runs already made in RUNS.
#
#     bash bench/engine_statistics.sh [DATA_DIR] [PYTHON] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
data=$(realpath "${1:-../shared/data}")
python=$(realpath -s "${2:-.venv/bin/python}")  # -s: the venv's link, not the interpreter it points to
runs=$(realpath -m "${3:-runs/engine-statistics}")
before=$(mktemp -d)/engine1
git worktree add --quiet --detach "$before" 60a8786  # the tag engine-1
trap 'git worktree remove --force "$before"' EXIT
mkdir -p "$runs"
version=$(PYTHONPATH=src "$python" -c 'from kdlab.protocols.common import ENGINE_VERSION; print(ENGINE_VERSION)')
for seed in 0 1 2 3 4; do
    for side in before after; do
        src=$([ "$side" = before ] && echo "$before/src" || realpath src)
        out="$runs/$side/seed$seed"
        [ -f "$out/results.json" ] && continue
        echo "$(date -u +%H:%M:%S) $side, teacher seed $seed" >&2
        (cd "$runs" && PYTHONPATH="$src" "$python" -c 'import sys; from kdlab.cli import main; sys.exit(main())' \
            run mythical-digit --seed "$seed" --out "$out" --data-dir "$data" --models-dir "$runs/models-$side" --quiet)
    done
done
{
    echo "Measured $(date -u +%Y-%m-%d) on $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores:"
    echo "\`kdlab run mythical-digit --seed S\`, S = 0 … 4, under engine 1 (tag engine-1) and engine $version (this checkout)."
    echo
    PYTHONPATH=src "$python" -m kdlab.reporting.engines "$runs/before" "$runs/after" --names "engine 1" "engine $version"
} > docs/performance/engines.md.part
mv docs/performance/engines.md.part docs/performance/engines.md
