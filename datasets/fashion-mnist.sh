#!/bin/sh
# Turns Debian's Fashion-MNIST (package dataset-fashion-mnist: gzip IDX files
# in /usr/share/datasets/fashion-mnist/) into class folders of 28x28 grey PNGs:
#
#   OUT/train/<class>/<nnnnn>.png   the 60,000 training images
#   OUT/val/<class>/<nnnnn>.png     the 10,000 official TEST images
#
# so that `aibox-train OUT` validates on the official test set and the
# reported validation accuracy is the test accuracy the benchmarks quote.
# With --test-dir the official test set goes to OUT/test/ instead; the tools
# then draw a seeded validation split from train/ and report test/ apart.
# <nnnnn> is the image's index in its IDX file, zero-padded so that name order
# is file order. Classes: T-shirt_top Trouser Pullover Dress Coat Sandal Shirt
# Sneaker Bag Ankle_boot (libaibox numbers classes in sorted name order).
#
#   sh datasets/fashion-mnist.sh OUT [--test-dir] [--force]
#
# Installs dataset-fashion-mnist and python3 when missing (needs root or
# sudo then). Writes into OUT.partial.<pid> and renames it to OUT at the end,
# so an interrupted run leaves no half-filled OUT; a finished OUT is left
# alone unless --force. Uses only Python's standard library (gzip, zlib,
# struct): PNG needs nothing more.
set -e
usage() { echo "usage: sh datasets/fashion-mnist.sh OUT [--test-dir] [--force]" >&2; exit 2; }
out=""; heldout=val; force=0
for a in "$@"; do
  case "$a" in
    --test-dir) heldout=test ;;
    --force) force=1 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fashion-mnist.sh: unknown option $a" >&2; usage ;;
    *) [ -z "$out" ] || usage; out="$a" ;;
  esac
done
[ -n "$out" ] || usage
out="${out%/}"
[ -n "$out" ] && [ "$out" != "." ] || { echo "fashion-mnist.sh: refusing to write into the root or current folder" >&2; exit 2; }
src=/usr/share/datasets/fashion-mnist
marker="$out/.aibox-fashion-mnist"

if [ -f "$marker" ] && [ "$force" -eq 0 ]; then
  echo "fashion-mnist.sh: $out is already converted ($(cat "$marker")); --force redoes it" >&2
  exit 0
fi
if [ -e "$out" ] && [ "$force" -eq 0 ]; then
  echo "fashion-mnist.sh: $out exists but is not a finished conversion; remove it or pass --force" >&2
  exit 1
fi

here=$(cd "$(dirname "$0")" && pwd)
sh "$here/../tools/install-deps.sh" dataset-fashion-mnist python3
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  [ -f "$src/$f" ] || { echo "fashion-mnist.sh: $src/$f is missing (is dataset-fashion-mnist installed?)" >&2; exit 1; }
done

tmp="$out.partial.$$"
trap 'rm -rf "$tmp"' EXIT INT TERM
rm -rf "$tmp"
mkdir -p "$tmp"
/usr/bin/python3 - "$src" "$tmp" "$heldout" <<'PYEOF'
import gzip, os, struct, sys, zlib

src, out, heldout = sys.argv[1:4]
CLASSES = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot"]

def idx(path, magic):
    with gzip.open(path, "rb") as f:
        data = f.read()
    m, n = struct.unpack(">II", data[:8])
    if m != magic:
        sys.exit(f"fashion-mnist.sh: {path}: IDX magic {m}, expected {magic}")
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        if len(data) != 16 + n * rows * cols:
            sys.exit(f"fashion-mnist.sh: {path}: truncated")
        return n, rows, cols, data[16:]
    if len(data) != 8 + n:
        sys.exit(f"fashion-mnist.sh: {path}: truncated")
    return n, data[8:]

def chunk(kind, body):
    c = kind + body
    return struct.pack(">I", len(body)) + c + struct.pack(">I", zlib.crc32(c) & 0xffffffff)

def png_grey(w, h, pixels):
    # filter byte 0 (none) before every row
    raw = b"".join(b"\0" + pixels[y * w:(y + 1) * w] for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))

for part, prefix in (("train", "train"), (heldout, "t10k")):
    n, rows, cols, pix = idx(f"{src}/{prefix}-images-idx3-ubyte.gz", 2051)
    nl, labels = idx(f"{src}/{prefix}-labels-idx1-ubyte.gz", 2049)
    if n != nl:
        sys.exit(f"fashion-mnist.sh: {prefix}: {n} images but {nl} labels")
    for c in CLASSES:
        os.makedirs(f"{out}/{part}/{c}", exist_ok=True)
    size = rows * cols
    for i in range(n):
        with open(f"{out}/{part}/{CLASSES[labels[i]]}/{i:05d}.png", "wb") as f:
            f.write(png_grey(cols, rows, pix[i * size:(i + 1) * size]))
    print(f"fashion-mnist.sh: {part}/: {n} images of {cols}x{rows}", file=sys.stderr)
PYEOF

echo "train/ 60000 + $heldout/ 10000 (official test set), from $src" >"$tmp/.aibox-fashion-mnist"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT INT TERM
echo "fashion-mnist.sh: wrote $out (train/ and $heldout/, 10 classes)" >&2
