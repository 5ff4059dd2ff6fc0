#!/usr/bin/env bash
# The device check: on one H100/H200 with CuPy installed, in under 8 minutes, everything the GPU
# path has that CPU-only tests cannot reach.
#
#   1. the known-answer tests on every backend (the xp fixture's cupy parameter) and the device
#      mapping / probe / memory tests;
#   2. the GPU cases at the smoke profile on CuPy (pytest --cryobench -m gpu);
#   3. the standard profile's FSC, NU, picking and one engine case of each kind, whose result
#      files become a GPU reference candidate (cryobench save-reference).
#
# The time limits add up to 470 s on a GPU (the standard step includes generating its data on the
# first run, which the per-user data cache keeps for later runs).
# Everything lands in one folder (default gpu-check-<host>-<date>). Steps run one after another; a
# failing step is reported and the next one still runs; the exit status is the number that failed.
#
# Usage: benchmarks/gpu_check.sh [--out DIR] [--backend cupy|numpy] [--dry-run] [--gpu N]
#   --backend numpy  exercise the flow on the CPU (the pytest runs take the NumPy backend, and the
#                    xp tests run their NumPy parameter only); not a device check.
#   --dry-run        print the commands, run nothing.
#   --gpu N          the CUDA ordinal to use (sets CUDA_VISIBLE_DEVICES=N unless it is set).
set -u

backend=cupy
dry_run=0
out=""
gpu=""
python=${PYTHON:-python}
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --backend) backend=$2; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        --gpu) gpu=$2; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$backend" in cupy|numpy) ;; *) echo "gpu_check.sh: --backend cupy or numpy" >&2; exit 2 ;; esac
if [ -n "$gpu" ] && [ -z "${CUDA_VISIBLE_DEVICES:-}" ]; then
    export CUDA_VISIBLE_DEVICES=$gpu
fi

host=$(hostname -s 2>/dev/null || echo host)
stamp=$(date +%Y%m%d-%H%M%S)
out=${out:-gpu-check-$host-$stamp}
case "$out" in /*) ;; *) out=$PWD/$out ;; esac
repo=$(cd "$(dirname "$0")/.." && pwd)
run_id="gpucheck-$stamp"
common=(--cryobench "--cryobench-backend=$backend" "--cryobench-output=$out/results"
        "--cryobench-project-dir=$out/project" "--cryobench-cache-dir=$out/cache" -p no:cacheprovider)
failed=0

scale=1
[ "$backend" = numpy ] && scale=5  # the CPU flow is slower; its limits only guard against hangs

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $out/NAME.log
    local name=$1 limit=$(($2 * scale))
    shift 2
    if [ "$dry_run" = 1 ]; then
        printf '[%s] timeout -s INT -k 20 %s %s\n' "$name" "$limit" "$*"
        return 0
    fi
    local start=$SECONDS
    echo "== $name (limit ${limit}s)"
    # SIGINT at the limit: pytest stops like on Ctrl-C and still writes the results it has
    if timeout -s INT -k 20 "$limit" "$@" >"$out/$name.log" 2>&1; then
        echo "   ok in $((SECONDS - start)) s"
    else
        local rc=$?
        failed=$((failed + 1))
        echo "   FAILED (exit $rc) after $((SECONDS - start)) s; the last lines of $out/$name.log:"
        tail -n 15 "$out/$name.log" | sed 's/^/   | /'
    fi
}

if [ "$dry_run" = 0 ]; then
    mkdir -p "$out/results" "$out/project" "$out/cache"
    {
        echo "host: $host"; echo "date: $stamp"; echo "backend: $backend"
        echo "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-<unset>} CUDA_DEVICE_ORDER=${CUDA_DEVICE_ORDER:-<unset>}"
        nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total,driver_version --format=csv 2>&1 || true
        "$python" -c "import cupy; print('cupy', cupy.__version__, 'CUDA runtime', cupy.cuda.runtime.runtimeGetVersion())" 2>&1 || true
    } >"$out/environment.txt"
fi

cd "$repo" || exit 2
# 1. the known answers on every backend (the cupy parameter skips, with its reason, without a
#    GPU), and the GPU plumbing's own tests
step xp_tests 90 "$python" -m pytest -q -p no:cacheprovider tests/kernels tests/measure -rs
# 2. every GPU case at the smoke profile
step smoke_gpu 120 "$python" -m pytest "${common[@]}" -m gpu --cryobench-profile=smoke "--cryobench-run-id=$run_id-smoke"
# 3. the standard profile: FSC, NU, picking, and one engine case of each kind (disk and memory,
#    single and multi, linear10 and linear20, max and marg, C1 and D7), as a reference candidate
standard="fsc or matched_cv or picking or disk_single_linear10_max_C1 or memory_multi_linear20_marg_C1"
standard="$standard or memory_multi_linear10_max_D7"
step standard 240 "$python" -m pytest "${common[@]}" -m gpu --cryobench-profile=standard \
    "--cryobench-run-id=$run_id-standard" -k "$standard"
# the reference candidate, named for the machine
step reference 20 bash -c "cryobench save-reference --name 'gpu-check-$host' \
    --description 'device check on $host ($backend), $stamp' --output '$out/reference-gpu-check-$host.json' \
    --force '$out'/results/$run_id-standard_*_benchmark_data.json"

if [ "$dry_run" = 0 ]; then
    echo "results, logs and the reference candidate: $out ($failed step(s) failed)"
fi
exit "$failed"
