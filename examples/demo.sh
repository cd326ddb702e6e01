#!/bin/sh
# The main job, end to end on a fresh Debian 12 machine (run as root, or with
# sudo available): installs what is missing, builds, turns Debian's
# Fashion-MNIST into class folders (train/ and test/), trains the small CNN
# with aibox-train (validation split drawn from train/, early stopping; the
# official test set is scored apart and reported as test_acc), and
# classifies held-out test images with aibox-infer.
#   sh examples/demo.sh            (or: make demo)
# AIBOX_DEMO_DIR (default build/demo) holds the folders, the model and its logs.
set -e
cd "$(dirname "$0")/.."
sh tools/install-deps.sh libopenblas-dev libstb-dev zlib1g-dev libcmocka-dev libcjson-dev pkg-config dataset-fashion-mnist python3
make --no-print-directory >&2
out=${AIBOX_DEMO_DIR:-build/demo}
mkdir -p "$out"
sh datasets/fashion-mnist.sh "$out/fashion-mnist" --test-dir >&2
echo "== aibox-train (Fashion-MNIST, small CNN at 32x32 grey)" >&2
build/bin/aibox-train "$out/fashion-mnist" -o "$out/fashion.aibox" --model small --size 32 --epochs 15 \
  --batch 64 --val-split 0.1 --no-augment --patience 4 --seed 1
echo "== aibox-infer (the first three test images of three classes)" >&2
set +e
for c in Sneaker Trouser Bag; do
  ls "$out/fashion-mnist/test/$c" | head -n 3 | sed "s|^|$out/fashion-mnist/test/$c/|"
done | build/bin/aibox-infer -m "$out/fashion.aibox" --stdin-list --format text
rc=$?
echo "aibox-infer exit status: $rc (0 all classified, 1 some uncertain, >= 2 errors)" >&2
[ "$rc" -lt 2 ]
