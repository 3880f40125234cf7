#!/usr/bin/env bash
# Every measurement of docs/performance.md, in one window (about 20 minutes on 2 cores): run it
# with nothing else running. Each benchmark's output is written to docs/performance/engine2/,
# which the page includes. The engine benchmark runs twice per engine, interleaved, to show how much this
# machine's speed moves between repeats.
#
# The hinton2015 full budget (two hours) is too long for a window: bench/bound_run.py gives its
# ratio from the records of a finished run.
#
# "engine1" is the engine before its version 2 (commit 60a8786, the tag engine-1, in a worktree of
# its own); the other files measure this checkout.
#
#     bash bench/window.sh [DATA_DIR] [PYTHON]
set -euo pipefail
cd "$(dirname "$0")"
data=$(realpath "${1:-../../shared/data}")
python=${2:-../.venv/bin/python}
out=../docs/performance/engine2  # the window before (engine 1 and the candidate): docs/performance/*.md
engine1=$(mktemp -d)/engine1
git worktree add --quiet --detach "$engine1" 60a8786  # the tag engine-1
trap 'git worktree remove --force "$engine1"' EXIT
mkdir -p "$out"
run() { # NAME SRC SCRIPT ARGS...: one benchmark of kdlab from SRC, its output (less the profiler's own log lines) kept
    local name=$1 src=$2; shift 2
    echo "$(date -u +%H:%M:%S) $name" >&2
    PYTHONPATH="$src" "$python" "$@" --data-dir "$data" 2>&1 | grep -v '^USDT:' > "$out/$name.md.part"
    mv "$out/$name.md.part" "$out/$name.md"
}
now=$(realpath ../src)
{
    echo "Measured $(date -u +%Y-%m-%d) on $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores,"
    "$python" -c 'import torch; print(f"torch {torch.__version__}, {torch.get_num_threads()} threads.")'
} > "$out/machine.md"
run protocol-engine2 "$now" bench_protocol.py
run protocol-engine1 "$engine1/src" bench_protocol.py
run protocol-engine2-seeds5 "$now" bench_protocol.py --seeds 5
run protocol-engine2-2epochs "$now" bench_protocol.py --epochs 2
run typical-2epochs "$now" typical.py --epochs 2
for repeat in 1 2; do
    run "engine2-$repeat" "$now" bench_engine.py
    run "engine1-$repeat" "$engine1/src" bench_engine.py
done
run profile-teacher-engine2 "$now" profile_step.py --group teacher --steps 200 --top 16
run profile-teacher-engine1 "$engine1/src" profile_step.py --group teacher --steps 200 --top 16
run profile-small-engine2 "$now" profile_step.py --group small --models 2 --steps 200 --top 16
run profile-small8-engine2 "$now" profile_step.py --group small --models 8 --steps 200 --top 16
