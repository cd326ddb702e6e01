#!/usr/bin/python3
"""PyTorch parity fixture for tests/ops/test_map.c (map resize and blur).

Usage: /usr/bin/python3 tests/ops/map_parity.py OUTDIR

Writes raw little-endian float32 files to OUTDIR:
  in56.f32      a seeded 56x56 map          rs224.f32  F.interpolate to 224x224
  in224.f32     a seeded 224x224 map        rs56.f32   F.interpolate to 56x56
  in7x5.f32     a seeded 7 wide x 5 high    rs13x11.f32  to 13 wide x 11 high
  blur4.f32     in224 blurred as Anomalib's GaussianBlur2d(sigma=4): kornia's
                normalised Gaussian, reflect padding, conv2d (not separable)
(all bilinear, align_corners=False, no antialias). Exit status 77 when torch
is not importable (the C test then skips).
"""
import os
import sys

try:
    import torch
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001
    print("torch not importable: %s" % e, file=sys.stderr)
    sys.exit(77)


def save(path, t):
    with open(path, "wb") as f:
        f.write(t.detach().contiguous().to(torch.float32).numpy().astype("<f4").tobytes())


def resize(x, h, w):
    return F.interpolate(x[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]


def blur(x, sigma):
    # Anomalib: kernel size 2 * int(4 sigma + 0.5) + 1; kornia's gaussian in float32
    ks = 2 * int(4.0 * sigma + 0.5) + 1
    r = ks // 2
    xs = torch.arange(ks, dtype=torch.float32) - ks // 2
    g = torch.exp(-xs.pow(2.0) / (2 * sigma ** 2))
    g = g / g.sum()
    k2 = g[:, None] * g[None, :]
    k2 = k2 / k2.abs().sum()
    padded = F.pad(x[None, None], [r, r, r, r], mode="reflect")
    return F.conv2d(padded, k2[None, None])[0, 0]


def main():
    out = sys.argv[1]
    gen = torch.Generator().manual_seed(1234)
    in56 = torch.rand(56, 56, generator=gen)
    in224 = torch.rand(224, 224, generator=gen)
    in7x5 = torch.rand(5, 7, generator=gen)
    save(os.path.join(out, "in56.f32"), in56)
    save(os.path.join(out, "in224.f32"), in224)
    save(os.path.join(out, "in7x5.f32"), in7x5)
    save(os.path.join(out, "rs224.f32"), resize(in56, 224, 224))
    save(os.path.join(out, "rs56.f32"), resize(in224, 56, 56))
    save(os.path.join(out, "rs13x11.f32"), resize(in7x5, 11, 13))
    save(os.path.join(out, "blur4.f32"), blur(in224, 4.0))


if __name__ == "__main__":
    main()
