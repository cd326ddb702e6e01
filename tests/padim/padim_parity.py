#!/usr/bin/python3
"""PyTorch/NumPy PaDiM reference for tests/padim/test_padim.c.

Usage:
  /usr/bin/python3 tests/padim/padim_parity.py gen DIR   # backbone + images
  /usr/bin/python3 tests/padim/padim_parity.py ref DIR   # reference maps

gen writes DIR/resnet18.safetensors (a seeded random ResNet-18 with
non-trivial batch-norm statistics, as tests/io/torch_parity.py builds it),
DIR/fit.f32 (N x 3 x 224 x 224 float32) and DIR/test.f32 (T x ...).
ref reads DIR/channels.txt (the channel indices libaibox chose) and writes
DIR/ref.f32: a straightforward PaDiM as Anomalib computes it — layer1..3
features, nearest-upsampled to layer1's grid, concatenated, index_select;
per-patch mean and unbiased covariance + 0.01 I (float64), inverse,
Mahalanobis distance, bilinear upsampling (align_corners=False) to 224,
Gaussian blur sigma 4 (kernel 33, reflect padding).
Exit status 77 when torch is not importable (the C test then skips).
"""
import os
import sys

try:
    import torch
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001
    print("torch not importable: %s" % e, file=sys.stderr)
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "io"))
import torch_parity  # noqa: E402  (the ResNet-18 builder and safetensors writer)

N_FIT, N_TEST, SIZE = 24, 2, 224


def model():
    torch.manual_seed(99)
    m, _ = torch_parity.build("resnet18")
    torch_parity.trained_looking(m, SIZE, batches=2)
    return m


def images(n, seed):
    g = torch.Generator().manual_seed(seed)
    # smooth-ish inputs: a random low-resolution pattern upsampled, plus noise
    x = F.interpolate(torch.randn(n, 3, 14, 14, generator=g), size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return (x + 0.3 * torch.randn(n, 3, SIZE, SIZE, generator=g)).contiguous()


def features(m, x):
    with torch.no_grad():
        y = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        l1 = m.layer1(y)
        l2 = m.layer2(l1)
        l3 = m.layer3(l2)
    e = l1
    for l in (l2, l3):
        e = torch.cat([e, F.interpolate(l, size=e.shape[-2:], mode="nearest")], 1)
    return e


def blur(x, sigma=4.0):
    ks = 2 * int(4.0 * sigma + 0.5) + 1
    t = torch.arange(ks, dtype=torch.float64) - ks // 2
    k = torch.exp(-(t**2) / (2 * sigma * sigma))
    k = (k / k.sum()).to(x.dtype)
    p = ks // 2
    x = F.pad(x, (p, p, p, p), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, ks))
    return F.conv2d(x, k.view(1, 1, ks, 1))


def main():
    mode, out = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    m = model()
    if mode == "gen":
        os.makedirs(out, exist_ok=True)
        torch_parity.save_safetensors(os.path.join(out, "resnet18.safetensors"), m.state_dict())
        for name, n, seed in (("fit", N_FIT, 5), ("test", N_TEST, 6)):
            with open(os.path.join(out, name + ".f32"), "wb") as f:
                f.write(torch_parity.tensor_bytes(images(n, seed)))
        return 0
    idx = torch.tensor([int(v) for v in open(os.path.join(out, "channels.txt")).read().split()])
    fit = torch.index_select(features(m, images(N_FIT, 5)), 1, idx).double()  # N x d x H x W
    test = torch.index_select(features(m, images(N_TEST, 6)), 1, idx).double()
    n, d, h, w = fit.shape
    e = fit.reshape(n, d, h * w)
    mean = e.mean(0)  # d x P
    c = e - mean
    cov = torch.einsum("ndp,nep->pde", c, c) / (n - 1) + 0.01 * torch.eye(d, dtype=torch.float64)
    inv = torch.linalg.inv(cov)  # P x d x d
    v = test.reshape(N_TEST, d, h * w) - mean
    dist = torch.sqrt(torch.einsum("ndp,pde,nep->np", v, inv, v).clamp(min=0)).reshape(N_TEST, 1, h, w)
    maps = blur(F.interpolate(dist, size=(SIZE, SIZE), mode="bilinear", align_corners=False))
    with open(os.path.join(out, "ref.f32"), "wb") as f:
        f.write(torch_parity.tensor_bytes(maps.float()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
