#!/usr/bin/python3
"""Reproduce the README figures: run the shared quantised MobileNets on the 4 test images
with run_tflite.py (built-in kernels) and, if --litert is given, run_litert.mjs (LiteRT.js,
XNNPACK), and print top-1 and the byte differences of output tensor 0.

    verify.py --lib LIBTENSORFLOWLITE_C.so [--litert CORE_DIR] [--models DIR] [--work DIR]

Inputs: whole image converted to RGB and resized to the model's HxW with PIL bilinear.
Exits 1 if mobilenet_v1_0.25_224_quant on burger.jpg is not top-1 934 with score >= 0.95.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = [("mobilenet_v1_0.25_224_quant", 224), ("mobilenet_v1_0.25_128_quant", 128),
          ("mobilenet_v1_1.0_224_quant_embedding_extractor", 224)]
IMAGES = ["burger.jpg", "sparrow.png", "cats_and_dogs.jpg", "cat.bmp"]


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode:
        sys.exit("verify.py: %s failed: %s" % (os.path.basename(cmd[1]),
                                                r.stderr.strip().splitlines()[-1:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--litert")
    ap.add_argument("--models", default="/work/shared/models/tflite")
    ap.add_argument("--work")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="tflite_ref.")
    os.makedirs(work, exist_ok=True)
    ok = True
    print("model\timage\ttop1_builtin\tscore\ttop1_litert\tdiff_bytes\tmax_abs_diff")
    for model, size in MODELS:
        mpath = os.path.join(a.models, model + ".tflite")
        pairs = []
        for img in IMAGES:
            stem = "%s_%s" % (model, img.split(".")[0])
            rgb = Image.open(os.path.join(a.models, img)).convert("RGB")
            x = np.asarray(rgb.resize((size, size), Image.BILINEAR), dtype=np.uint8)
            x.tofile(os.path.join(work, stem + ".in"))
            pairs.append(stem)
        lst = os.path.join(work, model + ".pairs")
        for tag in ("ref", "lrt"):
            with open(lst + "." + tag, "w") as f:
                f.writelines("%s %s\n" % (os.path.join(work, s + ".in"),
                                          os.path.join(work, s + "." + tag)) for s in pairs)
        run([sys.executable, os.path.join(HERE, "run_tflite.py"), "--lib", a.lib,
             "--batch", lst + ".ref", mpath])
        if a.litert:
            run(["node", os.path.join(HERE, "run_litert.mjs"), "--pkg", a.litert,
                 "--batch", lst + ".lrt", mpath])
        for s, img in zip(pairs, IMAGES):
            r = np.fromfile(os.path.join(work, s + ".ref"), np.uint8).astype(int)
            cols = [model, img, str(r.argmax()), "%d/256" % r.max()]
            if a.litert:
                l = np.fromfile(os.path.join(work, s + ".lrt"), np.uint8).astype(int)
                cols += [str(l.argmax()), "%d/%d" % ((r != l).sum(), r.size),
                         str(abs(r - l).max())]
            print("\t".join(cols))
            if model == MODELS[0][0] and img == "burger.jpg":
                ok = r.argmax() == 934 and r.max() >= 0.95 * 256
    if not ok:
        sys.exit("verify.py: FAIL: 0.25_224 on burger.jpg is not cheeseburger (934) >= 0.95")


if __name__ == "__main__":
    main()
