#!/bin/sh
# The same models on two architectures: models made by the x86 tools (a
# classifier trained on NEU steel images, MobileNet v1 imported from TFLite in
# 8 bits and as its float twin, a PaDiM model fitted on magnetic tiles) are
# run by the x86 aibox-infer natively and by the aarch64 one under qemu, on the
# same images; the answers must agree: the same label or verdict, every
# probability and score within 1e-5 relative (tests/arm64/agree.py), and the
# 8-bit model's exactly (integer arithmetic has one right answer).
#   sh tests/arm64/agree.sh X86_BUILD ARM64_BUILD "EMULATOR COMMAND"
# Run by `make check-arm64` from the source tree; ends with one tally line.
set -u
x86=$1 arm=$2 emu=$3
data=${AIBOX_DATA:-../shared/data}
models=${AIBOX_MODELS:-$data/../models/tflite}
py=/usr/bin/python3
[ -x "$py" ] || py=python3
for need in "$data/neu-cls" "$data/magnetic-tile/MT_Free" "$models/mobilenet_v1_0.25_224_quant.tflite"; do
  if [ ! -e "$need" ]; then
    echo "agree: $need not found: the cross-architecture comparison needs ../shared (AIBOX_DATA, AIBOX_MODELS)" >&2
    exit 1
  fi
done
data=$(cd "$data" && pwd) models=$(cd "$models" && pwd)   # absolute: the links below point there
tmp=$(mktemp -d /tmp/aibox_agree_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

# both: NAME ARGS... -- aibox-infer on both architectures, outputs compared
both() {
  name=$1; shift
  "$x86/bin/aibox-infer" "$@" >"$tmp/$name.x86" 2>"$tmp/$name.x86.err"
  rx=$?
  # shellcheck disable=SC2086  # the emulator is a command and its options
  $emu "$arm/bin/aibox-infer" "$@" >"$tmp/$name.arm64" 2>"$tmp/$name.arm64.err"
  ra=$?
  if [ "$rx" -ne "$ra" ]; then
    echo "agree: $name: exit status $rx on x86, $ra on arm64" >&2
    cat "$tmp/$name.x86.err" "$tmp/$name.arm64.err" >&2
    fail=$((fail + 1)); return
  fi
  if "$py" tests/arm64/agree.py "$name" "$tmp/$name.x86" "$tmp/$name.arm64" "${EXACT:-0}" "${TOL:-1e-5}"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
  fi
}

# pick SRC FIRST LAST DEST [PREFIX]: links the sorted .jpg files FIRST..LAST
# of folder SRC into DEST (as PREFIX<name>); the data stays where it is
pick() {
  ls "$1" | grep '\.jpg$' | sort | sed -n "$2,$3p" | while read -r f; do ln -s "$1/$f" "$4/${5:-}$f"; done
}

# 1. A classifier trained on x86: 2 NEU classes, 24 images each, 2 epochs.
mkdir -p "$tmp/neu/scratches" "$tmp/neu/patches" "$tmp/probe"
for c in scratches patches; do
  pick "$data/neu-cls/$c" 1 24 "$tmp/neu/$c"
  pick "$data/neu-cls/$c" 25 29 "$tmp/probe" "$c-"
done
"$x86/bin/aibox-train" "$tmp/neu" -o "$tmp/cls.aibox" --size 64 --epochs 2 --batch 8 --seed 3 --quiet \
  >"$tmp/train.log" 2>&1 || { cat "$tmp/train.log" >&2; echo "agree: training failed" >&2; exit 1; }
both classifier -m "$tmp/cls.aibox" --threads 1 "$tmp/probe"

# 2. MobileNet v1 0.25/224 imported: the 8-bit model (integer plan: exact)
#    and the float32 one.
"$x86/bin/aibox-import" "$models/mobilenet_v1_0.25_224_quant.tflite" --labels "$models/imagenet_labels.txt" \
  -o "$tmp/mnv1.aibox" --quiet >"$tmp/import.log" 2>&1 &&
"$x86/bin/aibox-import" "$models/mobilenet_v1_0.25_224_1_default_1.tflite" --labels "$models/imagenet_labels.txt" \
  -o "$tmp/mnv1f.aibox" --quiet >>"$tmp/import.log" 2>&1 ||
  { cat "$tmp/import.log" >&2; echo "agree: import failed" >&2; exit 1; }
EXACT=1 both mobilenet-int8 -m "$tmp/mnv1.aibox" --threads 1 "$models/burger.jpg" "$models/cat.bmp"
both mobilenet-float -m "$tmp/mnv1f.aibox" --threads 1 "$models/burger.jpg" "$models/cat.bmp"

# 3. PaDiM on the MobileNet extractor, fitted on 12 good tiles, 4 images scored.
mkdir -p "$tmp/good" "$tmp/score"
pick "$data/magnetic-tile/MT_Free/Imgs" 1 12 "$tmp/good"
pick "$data/magnetic-tile/MT_Free/Imgs" 13 14 "$tmp/score"
pick "$data/magnetic-tile/MT_Blowhole/Imgs" 1 2 "$tmp/score"
"$x86/bin/aibox-train" padim "$tmp/good" -o "$tmp/padim.aibox" \
  --backbone "$models/mobilenet_v1_1.0_224_quant_embedding_extractor.tflite" --quiet >"$tmp/padim.log" 2>&1 ||
  { cat "$tmp/padim.log" >&2; echo "agree: PaDiM fit failed" >&2; exit 1; }
both padim -m "$tmp/padim.aibox" --threads 1 "$tmp/score"

echo "agree: tests: $pass passed, $fail failed (x86 $x86 against arm64 $arm under: $emu)"
[ "$fail" -eq 0 ]
