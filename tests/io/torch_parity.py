#!/usr/bin/python3
"""PyTorch parity fixture for tests/io/test_safetensors.c.

Usage: /usr/bin/python3 tests/io/torch_parity.py OUTDIR [ARCH [SIZE]]
ARCH: resnet18 (default), resnet50 or wide_resnet50_2; SIZE: the input's
height and width (default 224).

Builds a randomly initialised ARCH with torchvision's parameter names
(torchvision.models.ARCH when torchvision imports, else the same network
written in plain torch.nn), gives its batch norms non-trivial affine
parameters and running statistics, and writes to OUTDIR:
  ARCH.safetensors  the state dict (safetensors written by hand: no
                    dependency on the safetensors package), including the
                    int64 num_batches_tracked scalars
  ARCH.input.f32    a seeded 1x3xSIZExSIZE input, raw little-endian float32
  ARCH.logits.f32   the eval-mode output for it (1x1000), same encoding
and prints the model's parameter count on stderr.
Exit status 77 when torch is not importable (the C test then skips).
"""
import json
import os
import struct
import sys

try:
    import torch
    import torch.nn as nn
except Exception as e:  # noqa: BLE001
    print("torch not importable: %s" % e, file=sys.stderr)
    sys.exit(77)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + idt)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (v1.5: stride on the 3x3 conv)."""

    def __init__(self, cin, width, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + idt)


class ResNet(nn.Module):
    """torchvision.models.resnet18 / resnet50 / wide_resnet50_2: structure and parameter names."""

    def __init__(self, arch="resnet18", classes=1000):
        super().__init__()
        bottleneck = arch != "resnet18"
        blocks = (3, 4, 6, 3) if bottleneck else (2, 2, 2, 2)
        factor = 2 if arch == "wide_resnet50_2" else 1
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, planes in enumerate((64, 128, 256, 512)):
            s = 1 if i == 0 else 2
            if bottleneck:
                cout = planes * 4
                layer = [Bottleneck(cin if b == 0 else cout, planes * factor, cout, s if b == 0 else 1)
                         for b in range(blocks[i])]
            else:
                cout = planes
                layer = [BasicBlock(cin if b == 0 else cout, cout, s if b == 0 else 1) for b in range(blocks[i])]
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*layer))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build(arch):
    try:
        import torchvision
        return getattr(torchvision.models, arch)(), "torchvision " + torchvision.__version__
    except Exception:  # noqa: BLE001
        return ResNet(arch), "plain torch.nn (torchvision not importable)"


DT = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    try:
        import numpy
        if t.dtype in (torch.float32, torch.int64):
            return t.numpy().astype("<f4" if t.dtype == torch.float32 else "<i8").tobytes()
    except ImportError:
        pass
    if t.dtype == torch.float32:
        return struct.pack("<%df" % t.numel(), *t.flatten().tolist())
    if t.dtype == torch.int64:
        return struct.pack("<%dq" % t.numel(), *t.flatten().tolist())
    raise ValueError(t.dtype)


def trained_looking(model, size, batches, scale=1.0, shift=0.0):
    """Gives the batch norms non-trivial affine parameters and running
    statistics (a cumulative average over a few random batches of size x size
    inputs drawn as randn * scale + shift); leaves the model in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0.0, 0.2)
        model.train()
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
        for _ in range(batches):
            x = torch.randn(2, 3, size, size)
            model(x * scale + shift if (scale, shift) != (1.0, 0.0) else x)
        for bn in bns:
            bn.momentum = 0.1
    model.eval()


def save_safetensors(path, sd):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in sd.items():
        b = tensor_bytes(t)
        header[name] = {"dtype": DT[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    out = sys.argv[1]
    arch = sys.argv[2] if len(sys.argv) > 2 else "resnet18"
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 224
    if arch not in ("resnet18", "resnet50", "wide_resnet50_2"):
        print("unknown arch %s" % arch, file=sys.stderr)
        sys.exit(2)
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(1234)
    torch.set_num_threads(2)
    model, source = build(arch)
    trained_looking(model, size, batches=3, scale=1.5, shift=0.3)
    with torch.no_grad():
        x = torch.randn(1, 3, size, size)
        y = model(x)
    save_safetensors(os.path.join(out, arch + ".safetensors"), model.state_dict())
    with open(os.path.join(out, arch + ".input.f32"), "wb") as f:
        f.write(tensor_bytes(x))
    with open(os.path.join(out, arch + ".logits.f32"), "wb") as f:
        f.write(tensor_bytes(y))
    params = sum(p.numel() for p in model.parameters())
    print("torch_parity: %s %dx%d, %s, torch %s, %d parameters, logits max |y| %.4g"
          % (arch, size, size, source, torch.__version__, params, y.abs().max().item()), file=sys.stderr)


if __name__ == "__main__":
    main()
