#!/bin/sh
# Benchmarks libaibox against PyTorch on the AI-Box AlexNet at 256x256x3 and
# prints a comparison table. Installs python3-torch when missing (root).
#   sh bench/run.sh            (or: make bench)
# Each side runs alone, one after the other, on 2 threads, and each figure is
# the better of two processes (a whole run is now and then slow on this small
# shared box). Numbers taken while other work runs on the machine are noisy,
# so the load is printed first.
set -e
cd "$(dirname "$0")/.."
PY=/usr/bin/python3 # Debian's interpreter, the one python3-torch installs into
sh tools/install-deps.sh python3-torch python3-numpy
make --no-print-directory build/bench/bench_layers >&2

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (on $(nproc) cores)" >&2

echo "== libaibox" >&2
build/bench/bench_layers --threads 2 --json >"$tmp/aibox1.json"
build/bench/bench_layers --threads 2 --json >"$tmp/aibox2.json" 2>/dev/null
echo "== PyTorch (best settings)" >&2
$PY bench/peer_torch.py --mode best --threads 2 --infer-threads 1 --runs 2 --json >"$tmp/torch.json"

$PY - "$tmp/aibox1.json" "$tmp/aibox2.json" "$tmp/torch.json" <<'PYEOF'
import json, sys
a1, a2 = (json.load(open(f)) for f in sys.argv[1:3])
a = dict(max(a1, a2, key=lambda r: r["train_img_s"]))  # its layer table too
a["infer_b1_ms"] = min(a1["infer_b1_ms"], a2["infer_b1_ms"])
a["infer_b1_ms_1thread"] = min(a1["infer_b1_ms_1thread"], a2["infer_b1_ms_1thread"])
runs = json.load(open(sys.argv[3]))["results"]
t2 = next(r for r in runs if r["threads"] == 2 and "train_img_s" in r)
t1 = next(r for r in runs if r["threads"] == 1)

print()
print(f"AI-Box AlexNet-256, {a['params']} parameters; libaibox {a['version']} ({a['blas_core']}) "
      f"vs PyTorch {t2['torch']} (best: dispatch {t2['cpu_capability']}, OpenBLAS {t2['openblas_core']})")
print(f"{'':34} {'libaibox':>10} {'PyTorch':>10} {'ratio':>7}  target")
print(f"{'training img/s, batch 16, 2 thr':34} {a['train_img_s']:10.2f} {t2['train_img_s']:10.2f} "
      f"{a['train_img_s'] / t2['train_img_s']:6.2f}x  >= 1.0x (aim 1.3x)")
for name, ours, theirs, goal in (("inference ms, batch 1, 2 threads", a["infer_b1_ms"], t2["infer_b1_ms"], 24),
                                 ("inference ms, batch 1, 1 thread", a["infer_b1_ms_1thread"], t1["infer_b1_ms"], 35)):
    # ratio > 1 means libaibox is faster
    print(f"{name:34} {ours:10.2f} {theirs:10.2f} {theirs / ours:6.2f}x  < {goal} ms")
print()
print(f"{'conv layer (batch ' + str(a['batch']) + ')':34} {'GFLOPS':>10} {'sgemm':>10} {'ratio':>7}  target")
for l in a["layers"]:
    if "fwd_vs_sgemm" in l:
        print(f"{l['name'] + ' forward':34} {l['fwd_gflops']:10.1f} {l['sgemm_fwd_gflops']:10.1f} "
              f"{100 * l['fwd_vs_sgemm']:6.0f}%  >= 80%")
        print(f"{l['name'] + ' backward':34} {l['bwd_gflops']:10.1f} {l['sgemm_bwd_gflops']:10.1f} "
              f"{100 * l['bwd_vs_sgemm']:6.0f}%  >= 80%")
PYEOF
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
