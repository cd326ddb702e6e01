#!/bin/sh
# Data-parallel scaling across processes (issue 13, item 6): builds the MPI
# build (make MPI=1) into $BUILD (default build), then runs
# $BUILD/mpi/bench/scaling as 2 ranks x 1 thread and as 1 process x 2 threads
# on the same global batches, $RUNS times each (default 2), alternating, and
# prints bench/mpi/model.py's tables from every run's lines (model.py takes,
# per model and configuration, the run with the faster step).
#   sh bench/mpi/run.sh [scaling options, e.g. --models small,alexnet --steps 4]
# MODELS (default small,squeezenet,resnet18,alexnet) and the options go to
# every scaling run; the JSON lines are kept in $OUT (default a temporary
# directory, removed at the end). Takes about 10 minutes per run with the
# defaults on this 2-core machine. Needs Open MPI (libopenmpi-dev openmpi-bin).
set -e
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
RUNS=${RUNS:-2}
MODELS=${MODELS:-small,squeezenet,resnet18,alexnet}
PY=${PY:-python3}
make --no-print-directory -j2 MPI=1 BUILD="$BUILD" "$BUILD/mpi/bench/scaling" >&2
if [ -n "$OUT" ]; then mkdir -p "$OUT"; out=$OUT; else out=$(mktemp -d); trap 'rm -rf "$out"' EXIT INT TERM; fi
# root may run mpirun only when asked; --oversubscribe: the 2 ranks may not
# find 2 free "slots" in a container
MPIRUN="mpirun --oversubscribe"
[ "$(id -u)" = 0 ] && MPIRUN="$MPIRUN --allow-run-as-root"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (on $(nproc) cores)" >&2
r=1
while [ "$r" -le "$RUNS" ]; do
    echo "== run $r: 2 ranks x 1 thread" >&2
    $MPIRUN -np 2 --bind-to core "$BUILD/mpi/bench/scaling" --models "$MODELS" --threads 1 "$@" >"$out/np2_t1_$r.jsonl"
    echo "== run $r: 1 process x 2 threads" >&2
    # --bind-to none: one rank bound to one core would run its 2 threads on it
    $MPIRUN -np 1 --bind-to none "$BUILD/mpi/bench/scaling" --models "$MODELS" --threads 2 "$@" >"$out/np1_t2_$r.jsonl"
    r=$((r + 1))
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
$PY bench/mpi/model.py "$out"/*.jsonl
