#!/usr/bin/python3
"""PyTorch parity fixture for tests/classify/test_gradcam.c (Grad-CAM).

Usage: /usr/bin/python3 tests/classify/gradcam_parity.py DIR

DIR holds what the C test wrote, raw little-endian float32 in PyTorch's
layouts: conv1.w conv1.b (6x3x3x3, 6), bn.g bn.b bn.m bn.v (6 each),
conv2.w conv2.b (8x6x3x3, 8), fc.w fc.b (4x8, 4) and x (1x3x20x20), for

  conv1(3->6, 3x3, pad 1) BN(eps 1e-3) ReLU MaxPool(2) conv2(6->8, 3x3, pad 1)
  ReLU AdaptiveAvgPool(1) Flatten Dropout(0.5) Linear(8->4)

in eval mode. For each case (layer, class; class -1: the highest logit) a
Grad-CAM with hooks on the layer, in float64 (the reference; the weights are
the float32 values exactly): alpha_k = mean over the map of
d logit_class / dA_k, cam = ReLU(sum_k alpha_k A_k). Writes
cam_<layer>.f32 (its map), and labels.f32 / logits.f32. Exit status 77
when torch is not importable (the C test then skips).
"""
import os
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
except Exception as e:  # noqa: BLE001
    print("torch not importable: %s" % e, file=sys.stderr)
    sys.exit(77)

CASES = [("relu2", -1), ("relu1", 2), ("conv2", 1), ("bn", 3)]


def load(d, name, shape):
    a = np.fromfile(os.path.join(d, name), dtype="<f4").astype(np.float64)
    return torch.from_numpy(a.reshape(shape))


def save(d, name, t):
    with open(os.path.join(d, name), "wb") as f:
        f.write(t.detach().contiguous().numpy().astype("<f4").tobytes())


def main():
    d = sys.argv[1]
    torch.manual_seed(0)
    m = nn.Sequential()
    m.add_module("conv1", nn.Conv2d(3, 6, 3, padding=1))
    m.add_module("bn", nn.BatchNorm2d(6, eps=1e-3))
    m.add_module("relu1", nn.ReLU())
    m.add_module("pool", nn.MaxPool2d(2))
    m.add_module("conv2", nn.Conv2d(6, 8, 3, padding=1))
    m.add_module("relu2", nn.ReLU())
    m.add_module("gap", nn.AdaptiveAvgPool2d(1))
    m.add_module("flatten", nn.Flatten())
    m.add_module("dropout", nn.Dropout(0.5))
    m.add_module("fc", nn.Linear(8, 4))
    m = m.double().eval()
    with torch.no_grad():
        m.conv1.weight.copy_(load(d, "conv1.w", (6, 3, 3, 3)))
        m.conv1.bias.copy_(load(d, "conv1.b", (6,)))
        m.bn.weight.copy_(load(d, "bn.g", (6,)))
        m.bn.bias.copy_(load(d, "bn.b", (6,)))
        m.bn.running_mean.copy_(load(d, "bn.m", (6,)))
        m.bn.running_var.copy_(load(d, "bn.v", (6,)))
        m.conv2.weight.copy_(load(d, "conv2.w", (8, 6, 3, 3)))
        m.conv2.bias.copy_(load(d, "conv2.b", (8,)))
        m.fc.weight.copy_(load(d, "fc.w", (4, 8)))
        m.fc.bias.copy_(load(d, "fc.b", (4,)))
    x = load(d, "x", (1, 3, 20, 20))
    labels = []
    for layer, cls in CASES:
        store = {}

        def fwd_hook(mod, inp, out):
            store["a"] = out
            out.register_hook(lambda g: store.__setitem__("g", g))

        h = getattr(m, layer).register_forward_hook(fwd_hook)
        m.zero_grad()
        logits = m(x)
        h.remove()
        c = int(logits.argmax(dim=1)) if cls < 0 else cls
        logits[0, c].backward()
        alpha = store["g"][0].mean(dim=(1, 2))
        cam = torch.relu((alpha[:, None, None] * store["a"][0]).sum(dim=0))
        save(d, "cam_%s.f32" % layer, cam)
        labels.append(c)
        if layer == "relu2":
            save(d, "logits.f32", logits[0])
    save(d, "labels.f32", torch.tensor(labels, dtype=torch.float64))
    return 0


if __name__ == "__main__":
    sys.exit(main())
