#!/usr/bin/python3
"""PyTorch PatchCore reference for tests/patchcore/test_patchcore.c.

Usage:
  /usr/bin/python3 tests/patchcore/patchcore_parity.py gen DIR   # backbone + images
  /usr/bin/python3 tests/patchcore/patchcore_parity.py ref DIR   # reference maps, scores
  /usr/bin/python3 tests/patchcore/patchcore_parity.py greedy DIR

gen writes the seeded random ResNet-18 and images of tests/padim/padim_parity.py
(DIR/resnet18.safetensors, DIR/fit.f32, DIR/test.f32). ref reads DIR/coreset.txt
(the bank rows libaibox chose, as indices into the fit images' patches in
order) and writes DIR/ref.f32 (T maps of 224 x 224, then T image scores): a
straightforward PatchCore as Anomalib computes it — layer2 and layer3,
AvgPool2d(3, 1, 1), layer3 bilinearly upsampled to layer2's grid,
concatenated; the bank = those rows; torch.cdist and min for the patch
scores, topk for the 9 support samples, 1 - softmax re-weighting; bilinear
upsampling to 224 and the Gaussian blur (sigma 4) — in float64.
greedy reads DIR/points.f32 (n x dim), DIR/proj.f32 (dim x k) and
DIR/greedy.txt's first line "n dim k count first" and writes the greedy
k-centre indices of the projected points (numpy, float64) to DIR/greedy_ref.txt.
Exit status 77 when torch is not importable (the C test then skips).
"""
import os
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001
    print("torch not importable: %s" % e, file=sys.stderr)
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "padim"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "io"))
import padim_parity  # noqa: E402  (the backbone, images and blur of the PaDiM reference)
import torch_parity  # noqa: E402


def embed(m, x):
    with torch.no_grad():
        y = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        l2 = m.layer2(m.layer1(y))
        l3 = m.layer3(l2)
    pool = torch.nn.AvgPool2d(3, 1, 1)
    l2, l3 = pool(l2.double()), pool(l3.double())
    e = torch.cat([l2, F.interpolate(l3, size=l2.shape[-2:], mode="bilinear", align_corners=False)], 1)
    n, d, h, w = e.shape
    return e.permute(0, 2, 3, 1).reshape(n, h * w, d), h, w


def main():
    mode, out = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    if mode == "greedy":
        n, dim, k, count, first = (int(v) for v in open(os.path.join(out, "greedy.txt")).read().split())
        x = np.fromfile(os.path.join(out, "points.f32"), dtype="<f4").reshape(n, dim).astype(np.float64)
        r = np.fromfile(os.path.join(out, "proj.f32"), dtype="<f4").reshape(dim, k).astype(np.float64)
        y = x @ r
        mind = np.full(n, np.inf)
        chosen, c = [], first
        for _ in range(count):
            chosen.append(c)
            mind = np.minimum(mind, ((y - y[c]) ** 2).sum(1))
            mind[chosen] = -1
            c = int(np.argmax(mind))  # the first (lowest) index of the maximum
        with open(os.path.join(out, "greedy_ref.txt"), "w") as f:
            f.write("\n".join(str(i) for i in chosen) + "\n")
        return 0
    if mode == "gen":
        return padim_parity.main()
    m = padim_parity.model()
    fit, h, w = embed(m, padim_parity.images(padim_parity.N_FIT, 5))
    test, _, _ = embed(m, padim_parity.images(padim_parity.N_TEST, 6))
    idx = torch.tensor([int(v) for v in open(os.path.join(out, "coreset.txt")).read().split()])
    bank = fit.reshape(-1, fit.shape[-1])[idx]
    maps, scores = [], []
    for e in test:
        d = torch.cdist(e, bank)  # P x K
        patch, loc = d.min(1)
        top = int(torch.argmax(patch))
        _, support = torch.cdist(bank[loc[top]][None], bank).topk(9, largest=False)
        dist = torch.cdist(e[top][None], bank[support[0]])
        weight = 1 - torch.softmax(dist, 1)[0, 0]
        scores.append(float(weight * patch[top]))
        grid = patch.reshape(1, 1, h, w)
        maps.append(padim_parity.blur(F.interpolate(grid, size=(224, 224), mode="bilinear", align_corners=False)))
    with open(os.path.join(out, "ref.f32"), "wb") as f:
        f.write(torch_parity.tensor_bytes(torch.cat(maps).float()))
        f.write(torch_parity.tensor_bytes(torch.tensor(scores, dtype=torch.float32)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
