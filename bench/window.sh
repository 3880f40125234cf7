#!/usr/bin/env bash
# Every measurement of docs/performance.md, in one window (about 20 minutes on 2 cores): run it
# with nothing else running. Each benchmark's output is written to docs/performance/, which the
# page includes. The engine benchmark runs twice per engine, interleaved, to show how much this
# machine's speed moves between repeats.
#
#     bash bench/window.sh [DATA_DIR] [PYTHON]
set -euo pipefail
cd "$(dirname "$0")"
data=$(realpath "${1:-../../shared/data}")
python=${2:-../.venv/bin/python}
out=../docs/performance
mkdir -p "$out"
run() { # NAME SCRIPT ARGS...: one benchmark, its output (less the profiler's own log lines) kept
    local name=$1; shift
    echo "$(date -u +%H:%M:%S) $name" >&2
    "$python" "$@" --data-dir "$data" 2>&1 | grep -v '^USDT:' > "$out/$name.md.part"
    mv "$out/$name.md.part" "$out/$name.md"
}
{
    echo "Measured $(date -u +%Y-%m-%d) on $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores,"
    "$python" -c 'import torch; print(f"torch {torch.__version__}, {torch.get_num_threads()} threads.")'
} > "$out/machine.md"
run protocol bench_protocol.py
run protocol-candidate bench_protocol.py --candidate
run protocol-seeds5 bench_protocol.py --seeds 5
run protocol-2epochs bench_protocol.py --epochs 2
run typical-2epochs typical.py --epochs 2
for repeat in 1 2; do
    run "engine-$repeat" bench_engine.py
    run "engine-candidate-$repeat" bench_engine.py --candidate
done
run profile-teacher profile_step.py --group teacher --steps 200 --top 16
run profile-teacher-candidate profile_step.py --group teacher --steps 200 --top 16 --candidate
run profile-small profile_step.py --group small --models 2 --steps 200 --top 16
