#!/bin/sh
# Benchmarks libaibox against PyTorch and prints comparison tables:
#   alexnet  the AI-Box AlexNet at 256x256x3 (training step, batch-1 inference)
#   padim    PaDiM inference per image end to end (decode, ResNet-18 layer1-3
#            d = 100 backbone, Mahalanobis, map) on 1 and 2 threads, plus the
#            MobileNet v1 backbones (libaibox only)
#   patchcore PatchCore inference per image end to end (ResNet-18 layer2+3,
#            1 %, 10 %, 25 % coresets) on 1 and 2 threads, and fit time and
#            peak memory for 200 and 800 good images, beside a plain PyTorch
#            (Anomalib-style) PatchCore; not part of 'all' (long: the PyTorch
#            greedy coreset). PATCHCORE_FIT (default 200,800) sets the fit
#            sizes, PATCHCORE_BUDGET (seconds, default 600) the PyTorch greedy
#            selection's time per fit size before its fit times are extrapolated,
#            PATCHCORE_CORESETS (default 0.01,0.1,0.25) the coreset shares.
#   autoencoder the convolutional auto-encoder's inference per image end to
#            end (decode, 128x128 network, SSIM and L2 residual maps, blur,
#            max) on 1 and 2 threads; libaibox only (no PyTorch peer), quick
#   quant    8-bit against float: the imported 8-bit MobileNets (v1 1.0
#            embedding extractor, 0.25/224) run in integers and as their float
#            twins (aibox-import --float): file size and batch-1 latency on 1
#            and 2 threads (bench_quant, the better of three processes); quick.
#            Trained models with accuracy: bench/README.md, "8-bit models"
# Installs python3-torch, python3-numpy and python3-pil when missing (root;
# not for 'autoencoder', which needs python3 alone for its table).
#   sh bench/run.sh [all|alexnet|padim|patchcore|autoencoder|quant]     (or: make bench [BENCH=padim])
# Each side runs alone, one after the other, and each figure is the better of
# two processes (a whole run is now and then slow on this small shared box).
# Numbers taken while other work runs on the machine are noisy, so the load
# is printed first.
set -e
cd "$(dirname "$0")/.."
what=${1:-all}
case $what in all|alexnet|padim|patchcore|autoencoder|quant) ;; *) echo "usage: sh bench/run.sh [all|alexnet|padim|patchcore|autoencoder|quant]" >&2; exit 2 ;; esac
PY=/usr/bin/python3 # Debian's interpreter, the one python3-torch installs into
[ "$what" = autoencoder ] || [ "$what" = quant ] || sh tools/install-deps.sh python3-torch python3-numpy python3-pil
if [ "$what" = quant ]; then
make --no-print-directory build/bench/bench_quant build/bin/aibox-import >&2
elif [ "$what" = patchcore ]; then
make --no-print-directory build/bench/bench_patchcore >&2
elif [ "$what" = autoencoder ]; then
make --no-print-directory build/bench/bench_autoencoder >&2
else
make --no-print-directory build/bench/bench_layers build/bench/bench_padim build/bench/bench_autoencoder >&2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (on $(nproc) cores)" >&2

if [ "$what" = all ] || [ "$what" = alexnet ]; then
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
fi

if [ "$what" = all ] || [ "$what" = padim ]; then
echo "== PaDiM: libaibox" >&2
build/bench/bench_padim --json >"$tmp/padim1.json"
build/bench/bench_padim --json >"$tmp/padim2.json" 2>/dev/null
echo "== PaDiM: libaibox, ResNet-18 with the half-precision factor" >&2
build/bench/bench_padim --half --backbones resnet18 --json >"$tmp/padimh.json" 2>/dev/null
echo "== PaDiM: PyTorch (best settings)" >&2
$PY bench/peer_padim.py --mode best --threads 1,2 --runs 2 --json >"$tmp/tpadim.json"

$PY - "$tmp/padim1.json" "$tmp/padim2.json" "$tmp/tpadim.json" "$tmp/padimh.json" <<'PYEOF'
import json, sys
runs = [json.load(open(f)) for f in sys.argv[1:3]]
torch = {r["threads"]: r for r in json.load(open(sys.argv[3]))["results"]}
half = json.load(open(sys.argv[4]))
targets = {1: 25, 2: 15}  # ResNet-18 end to end, ms per image
first = runs[0]
t0 = next(iter(torch.values()))
print()
print(f"PaDiM inference per image at 224x224, d = 100, taps at strides 4/8/16: decode (from memory) + preprocess + "
      f"backbone + Mahalanobis + map (bilinear, blur sigma 4) + max; {first['images']} "
      f"{'SYNTHETIC' if first['synthetic'] else 'real MT_Free'} JPEG tiles, fitted on {first['fit']}")
print(f"libaibox {first['version']} ({first['blas_core']}; ResNet-18 half: scored with the half-precision factor, one process) vs PyTorch {t0['torch']} (best: dispatch "
      f"{t0['cpu_capability']}, OpenBLAS {t0['openblas_core']}, blur {t0['blur']}); better of two processes each side")
print(f"{'backbone':18} {'thr':>3} {'median':>8} {'p90':>8} {'dec+pre':>8} {'score':>8} {'batch8/img':>10} "
      f"{'PyTorch':>8} {'p90':>8} {'batch8/img':>10} {'aibox/pt':>8} {'speed-up':>8}  target")
names = [b["name"] for b in first["backbones"]]
rows = []
for name in names:
    recs = [next(b for b in r["backbones"] if b["name"] == name) for r in runs]
    rows.append((name, recs))
    if name == "resnet18":  # one process with the half-precision factor
        rows.append(("resnet18 half", [half["backbones"][0]]))
for name, recs in rows:
    if not recs[0]["ran"]:
        print(f"{name:18} skipped: {recs[0]['skipped']}")
        continue
    label = {"resnet18": "ResNet-18", "resnet18 half": "ResNet-18 half", "mnv1": "MobileNet v1 1.0",
             "mnv1_025": "MobileNet v1 0.25"}.get(name, name)
    for i, res in enumerate(recs[0]["results"]):
        # the better of the two processes, by median end to end (the whole record)
        a = min((rec["results"][i] for rec in recs), key=lambda x: x["e2e_ms"])
        line = (f"{label:18} {a['threads']:3d} {a['e2e_ms']:8.2f} {a['e2e_p90_ms']:8.2f} {a['decode_pre_ms']:8.2f} "
                f"{a['score_ms']:8.2f} {a['batch_ms_per_image']:10.2f}")
        t = torch.get(a["threads"]) if name.startswith("resnet18") else None
        if t:
            line += (f" {t['e2e_ms']:8.2f} {t['e2e_p90_ms']:8.2f} {t['batch_ms_per_image']:10.2f} "
                     f"{a['e2e_ms'] / t['e2e_ms']:8.2f} {t['e2e_ms'] / a['e2e_ms']:7.2f}x")
            if a["threads"] in targets:
                line += f"  <= {targets[a['threads']]} ms"
        print(line)
print()
print("time split, medians in ms (libaibox: parts timed separately; backbone = the trunk alone, "
      "maha+emb = score without map - backbone, map = resize + blur + max on one thread)")
for name, recs in rows:
    if not recs[0]["ran"]:
        continue
    for i in range(len(recs[0]["results"])):
        a = min((rec["results"][i] for rec in recs), key=lambda x: x["e2e_ms"])
        print(f"  libaibox {name:13} {a['threads']} thr: decode+pre {a['decode_pre_ms']:6.2f}  backbone "
              f"{a['backbone_ms']:6.2f}  maha+emb {a['maha_embed_ms']:6.2f}  map {a['map_ms']:5.2f}")
for th in sorted(torch):
    t = torch[th]
    print(f"  PyTorch  resnet18      {th} thr: decode+pre {t['decode_pre_ms']:6.2f}  backbone+emb "
          f"{t['backbone_ms']:6.2f}  maha {t['maha_ms']:6.2f}  map {t['map_ms']:5.2f}")
print(f"load average: libaibox runs {runs[0]['load_before']} -> {runs[1]['load_after']}")
PYEOF
fi

if [ "$what" = patchcore ]; then
pc_fit=${PATCHCORE_FIT:-200,800}
pc_budget=${PATCHCORE_BUDGET:-600}
pc_cores=${PATCHCORE_CORESETS:-0.01,0.1,0.25}
pc_score=${pc_fit%%,*} # inference is timed on the first fit size's banks
echo "== PatchCore: libaibox (fits $pc_fit, inference on the $pc_score-image fits)" >&2
build/bench/bench_patchcore --fit "$pc_fit" --score-fits "$pc_score" --coresets "$pc_cores" --json >"$tmp/pc1.json"
echo "== PatchCore: libaibox, inference again (second process)" >&2
build/bench/bench_patchcore --fit "$pc_score" --coresets "$pc_cores" --json >"$tmp/pc2.json" 2>/dev/null
echo "== PatchCore: PyTorch (best settings; greedy budget $pc_budget s per fit size)" >&2
$PY bench/peer_patchcore.py --mode best --threads 1,2 --fit "$pc_fit" --score-fits "$pc_score" \
    --coresets "$pc_cores" --greedy-budget "$pc_budget" --runs 2 --json >"$tmp/tpc.json"

$PY - "$tmp/pc1.json" "$tmp/pc2.json" "$tmp/tpc.json" <<'PYEOF'
import json, sys
runs = [json.load(open(f)) for f in sys.argv[1:3]]
torch = json.load(open(sys.argv[3]))
first = runs[0]
key = lambda f: (f["fit"], round(f["coreset"], 9))
tfits = {key(f): f for f in torch["fits"]}
t0 = next((r for f in torch["fits"] for r in f["results"]), None)
print()
print(f"PatchCore at 224x224, ResNet-18 layer2+3 (D = 384, 28x28 patches), 128-d projection for the greedy coreset, "
      f"re-weighted score (9 neighbours), map bilinear + blur sigma 4; {first['images']} "
      f"{'SYNTHETIC' if first['synthetic'] else 'real MT_Free'} JPEG tiles (bench_padim's)")
print(f"libaibox {first['version']} ({first['blas_core']}) vs PyTorch "
      + (f"{t0['torch']} (best: dispatch {t0['cpu_capability']}, OpenBLAS {t0['openblas_core']}, torch.cdist + min, "
         f"blur {t0['blur']})" if t0 else "(no inference records)")
      + "; inference: the better of two processes each side")
print()
print("inference, ms per image end to end (decode + preprocess + score with map), batch 1:")
print(f"{'fit':>5} {'coreset':>7} {'bank':>7} {'MB':>6} {'thr':>3} {'median':>8} {'p90':>8} {'dec+pre':>8} "
      f"{'PyTorch':>8} {'p90':>8} {'speed-up':>8}  target")
for f in first["fits"]:
    if not f["results"]:
        continue
    other = next((g for g in runs[1]["fits"] if key(g) == key(f) and g["results"]), None)
    for i, r in enumerate(f["results"]):
        a = min([r] + ([other["results"][i]] if other else []), key=lambda x: x["e2e_ms"])
        line = (f"{f['fit']:5d} {f['coreset']:7g} {f['bank']:7d} {f['bank_mb']:6.1f} {a['threads']:3d} "
                f"{a['e2e_ms']:8.2f} {a['e2e_p90_ms']:8.2f} {a['decode_pre_ms']:8.2f}")
        t = next((x for x in tfits.get(key(f), {}).get("results", []) if x["threads"] == a["threads"]), None)
        if t:
            line += f" {t['e2e_ms']:8.2f} {t['e2e_p90_ms']:8.2f} {t['e2e_ms'] / a['e2e_ms']:7.2f}x"
        else:
            line += f" {'':8} {'':8} {'':8}"
        if a["threads"] == 1 and abs(f["coreset"] - 0.1) < 1e-9:
            line += "  <= 40 ms, >= 3x"
        print(line)
print()
print("fit (decode + preprocess + features + coreset selection), seconds; memory: growth of the peak RSS over the fit, MB")
print(f"{'fit':>5} {'coreset':>7} {'bank':>7} {'aibox s':>8} {'select':>8} {'peak +MB':>8} "
      f"{'PyTorch s':>10} {'greedy':>8} {'peak +MB':>8}")
for f in first["fits"]:
    t = tfits.get(key(f))
    line = (f"{f['fit']:5d} {f['coreset']:7g} {f['bank']:7d} {f['fit_s']:8.2f} {f['select_s']:8.2f} "
            f"{f['peak_growth_mb']:8.0f}")
    if t:
        line += (f" {t['fit_s']:10.2f} {t['greedy_s']:8.2f} {t['peak_growth_mb']:8.0f}"
                 + ("  (PyTorch estimated: greedy budget spent)" if t["estimated"] else ""))
    print(line)
print(f"libaibox fits on {first['fit_threads']} thread(s), PyTorch's on {torch['fit_threads']}; PyTorch's peak is its "
      f"fit to the largest share (one greedy run gives every share as a prefix)")
print(f"load average: libaibox runs {runs[0]['load_before']} -> {runs[1]['load_after']}")
PYEOF
fi
if [ "$what" = all ] || [ "$what" = autoencoder ]; then
echo "== auto-encoder: libaibox" >&2
build/bench/bench_autoencoder --residual ssim,l2 --json >"$tmp/ae1.json"
build/bench/bench_autoencoder --residual ssim,l2 --json >"$tmp/ae2.json" 2>/dev/null

$PY - "$tmp/ae1.json" "$tmp/ae2.json" <<'PYEOF'
import json, sys
runs = [json.load(open(f)) for f in sys.argv[1:3]]
first = runs[0]
m = first["model"]
print()
print(f"convolutional auto-encoder at {m['size']}x{m['size']}x{m['channels']} (width {m['width']}, latent "
      f"{m['latent']}, {m['params']} parameters; "
      + (f"{m['file']}" if m["file"] else f"fitted for {m['epochs']} epoch on {m['fit_images']} good tiles: the speed "
         "does not depend on how long it was trained")
      + f"): decode (from memory) + preprocess + forward + residual map + blur (sigma {m['blur_sigma']:g}) + max; "
      f"{first['images']} {'SYNTHETIC' if first['synthetic'] else 'real MT_Free'} JPEG tiles (bench_padim's)")
print(f"libaibox {first['version']} ({first['blas_core']}), libaibox only; the better of two processes")
print(f"{'residual':8} {'thr':>3} {'median':>8} {'p90':>8} {'min':>8} {'dec+pre':>8} {'score':>8} {'forward':>8} "
      f"{'map':>8}  target")
for i, r in enumerate(first["results"]):
    a = min((run["results"][i] for run in runs), key=lambda x: x["e2e_ms"])
    print(f"{a['residual']:8} {a['threads']:3d} {a['e2e_ms']:8.2f} {a['e2e_p90_ms']:8.2f} {a['e2e_min_ms']:8.2f} "
          f"{a['decode_pre_ms']:8.2f} {a['score_ms']:8.2f} {a['forward_ms']:8.2f} {a['map_ms']:8.2f}  "
          f"<= {first['target_ms']} ms")
print("forward: the network alone (its own context, frozen weights); map: residual + blur + max from its output, "
      "on one thread as the score call runs it (medians of interleaved runs)")
print(f"load average: libaibox runs {runs[0]['load_before']} -> {runs[1]['load_after']}")
PYEOF
fi
if [ "$what" = quant ]; then
M=${AIBOX_MODELS:-../shared/models/tflite}
for m in mobilenet_v1_1.0_224_quant_embedding_extractor mobilenet_v1_0.25_224_quant; do
  build/bin/aibox-import "$M/$m.tflite" -o "$tmp/$m.int8.aibox" --quiet >/dev/null
  build/bin/aibox-import "$M/$m.tflite" -o "$tmp/$m.float.aibox" --float --quiet >/dev/null
  for r in 1 2 3; do
    build/bench/bench_quant "$tmp/$m.float.aibox" "$tmp/$m.int8.aibox" --runs 100 >"$tmp/$m.$r.json" 2>/dev/null
  done
done
$PY - "$tmp" <<'PYEOF'
import json, os, sys
print()
print("8-bit (integer plan) against the float twin, batch 1, median of 100 runs; the better of three processes")
print(f"{'model':48} {'float MB':>9} {'int8 MB':>8} {'thr':>3} {'float ms':>9} {'int8 ms':>8} {'speed-up':>8}  target")
for m in ("mobilenet_v1_1.0_224_quant_embedding_extractor", "mobilenet_v1_0.25_224_quant"):
    runs = [[json.loads(l) for l in open(os.path.join(sys.argv[1], f"{m}.{r}.json"))] for r in (1, 2, 3)]
    for t, key in ((1, "ms_1thread"), (2, "ms_2threads")):
        f = min(r[0][key] for r in runs)
        q = min(r[1][key] for r in runs)
        print(f"{m:48} {runs[0][0]['bytes'] / 1e6:9.2f} {runs[0][1]['bytes'] / 1e6:8.2f} {t:3d} {f:9.3f} {q:8.3f} "
              f"{f / q:7.2f}x  >= 2x")
print(f"load average: {runs[0][0]['load']} -> {runs[-1][1]['load']}")
PYEOF
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
