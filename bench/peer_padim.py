#!/usr/bin/python3
"""PyTorch peer for bench_padim: PaDiM inference per image, end to end.

The same pipeline and shapes as bench/bench_padim.c's ResNet-18 case: the
same JPEG tiles (sorted names, an even stride, the first --fit for fitting),
read into memory first; per image PIL decode + RGB + resize to 224 (PIL
bilinear, antialiased when shrinking) + ImageNet normalisation, a plain-torch
ResNet-18 (tests/io/torch_parity.build("resnet18"): torchvision's structure, random
weights), features layer1..3, nearest-upsampled to layer1's 56x56 grid and
concatenated (448 channels), index_select of 100 seeded random channels, the
per-patch Mahalanobis distance as Anomalib computes it (a precomputed float32
inverse covariance P x d x d, delta @ inv * delta summed: batched matmul),
F.interpolate bilinear (align_corners=False) to 224, Gaussian blur sigma 4
(kernel 33, reflect padding; separable by default, --blur 2d runs Anomalib's
single 33x33 convolution), and the image score = the map's max. Eval mode,
torch.inference_mode. The fit (mean, covariance + 0.01 I in float64,
inverse) is not timed.

Reports per thread count the median and 90th percentile ms per image
end-to-end at batch 1, the split (decode + preprocess / score), a batch
throughput (--batch images decoded then scored together, ms per image), and a
profile of the score (backbone, Mahalanobis, map; medians of separate
interleaved runs).

Modes and processes as bench/peer_torch.py (its child_env is reused): each
(mode, threads) measurement runs in a fresh child process with the mode's
environment; 'best' = ATEN_CPU_CAPABILITY=avx512, OPENBLAS_CORETYPE unset,
OPENBLAS_NUM_THREADS=1, OMP_NUM_THREADS=N, glibc malloc tunables (no mmap for
big blocks, no trimming); 'default' = the machine's environment. With --runs
N each measurement takes the fastest (by median end-to-end) of N processes.
Run with /usr/bin/python3 (Debian's python3-torch). Human lines go to stdout,
or to stderr with --json, which prints one JSON line of results on stdout.
Decoding needs PIL (Debian python3-pil; torchvision, whose readers could
stand in, is not installed): without it the script stops with a message.
"""
import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import peer_torch  # noqa: E402  (child_env: the default/best environments; openblas_core)

SIZE, D, FIT_DEFAULT, IMAGES_DEFAULT = 224, 100, 16, 50
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def default_data():
    root = os.environ.get("AIBOX_DATA") or os.path.join(HERE, "..", "..", "shared", "data")
    return os.path.join(root, "magnetic-tile", "MT_Free", "Imgs")


def jpg_names(data):
    """The sorted *.jpg names in data ([] when it is absent), as bench.h's list_jpgs."""
    try:
        return sorted(f for f in os.listdir(data) if f.endswith(".jpg"))
    except OSError:
        return []


def even_pick(k, n, need):
    """The index of the k-th of need names taken at an even stride from n (bench.h's even_pick)."""
    return k * n // need


def pick_files(data, need):
    """bench_padim.c's choice: sorted *.jpg names, files[k * n / need]."""
    names = jpg_names(data)
    if len(names) < need:
        return None
    return [os.path.join(data, names[even_pick(k, len(names), need)]) for k in range(need)]


def synthetic_jpegs(need):
    """Grayscale JPEG tiles like bench_padim.c's stand-ins (needs PIL)."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(7)
    out = []
    for k in range(need):
        w, h = 240 + 16 * (k % 8), 280 + 8 * (k % 5)
        y, x = np.mgrid[0:h, 0:w]
        v = 110 + 40 * np.sin(0.02 * x + 0.1 * k) * np.cos(0.015 * y) + 20 * rng.random((h, w))
        buf = io.BytesIO()
        Image.fromarray(np.clip(v, 0, 255).astype(np.uint8), "L").save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def quantile(v, q):
    v = sorted(v)
    pos = q * (len(v) - 1)
    i = int(pos)
    return v[-1] if i >= len(v) - 1 else v[i] + (pos - i) * (v[i + 1] - v[i])


def resnet18():
    """(model, source): the plain-torch ResNet-18 (tests/io/torch_parity.build("resnet18"):
    torchvision's structure, random weights from torch's global seed), in eval mode."""
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "io"))
    import torch_parity  # the plain-torch ResNet-18 (torchvision's structure)
    model, source = torch_parity.build("resnet18")
    model.eval()
    return model, source


def decode_pre_fn(who):
    """decode_pre(jpeg bytes, out): PIL decode + RGB + resize to SIZE x SIZE (PIL
    bilinear, antialiased when shrinking) + ImageNet normalisation into out
    (3 x SIZE x SIZE). Without PIL the script `who` stops with a message."""
    import numpy as np
    import torch
    try:
        from PIL import Image
    except ImportError:
        sys.exit(f"{who}: PIL is not importable (Debian python3-pil); it decodes the JPEGs")
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)

    def decode_pre(b, out):
        im = Image.open(io.BytesIO(b))
        im.load()
        im = im.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
        t = torch.from_numpy(np.array(im)).permute(2, 0, 1).float().div_(255)
        out.copy_(t.sub_(mean).div_(std))
    return decode_pre


def blur_fn(sigma, mode):
    """blur(m) on N x 1 x H x W maps: Gaussian, kernel 2 * int(4 sigma + 0.5) + 1,
    reflect padding; separable, or with mode "2d" Anomalib's GaussianBlur2d (one
    k x k convolution)."""
    import torch
    import torch.nn.functional as F
    ks = 2 * int(4.0 * sigma + 0.5) + 1
    t = torch.arange(ks, dtype=torch.float64) - ks // 2
    k1 = torch.exp(-(t ** 2) / (2 * sigma * sigma))
    k1 = (k1 / k1.sum()).float()
    k_row, k_col, k2d = k1.view(1, 1, 1, ks), k1.view(1, 1, ks, 1), torch.outer(k1, k1).view(1, 1, ks, ks)
    pad = ks // 2

    def blur(m):
        m = F.pad(m, (pad, pad, pad, pad), mode="reflect")
        if mode == "2d":
            return F.conv2d(m, k2d)
        return F.conv2d(F.conv2d(m, k_row), k_col)
    return blur


def run_child(a):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    decode_pre = decode_pre_fn("peer_padim")

    need = a.fit + a.images
    files = pick_files(a.data, need)
    synthetic = files is None
    if synthetic:
        blobs = synthetic_jpegs(need)
    else:
        blobs = [open(f, "rb").read() for f in files]

    model, source = resnet18()

    def features(x):
        y = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        l1 = model.layer1(y)
        l2 = model.layer2(l1)
        l3 = model.layer3(l2)
        return l1, l2, l3

    g = torch.Generator().manual_seed(1)
    idx = torch.randperm(64 + 128 + 256, generator=g)[:D].sort().values

    def embed(x):
        l1, l2, l3 = features(x)
        e = torch.cat([l1, F.interpolate(l2, size=l1.shape[-2:], mode="nearest"),
                       F.interpolate(l3, size=l1.shape[-2:], mode="nearest")], 1)
        return torch.index_select(e, 1, idx)

    blur = blur_fn(4.0, a.blur)

    # Fit (not timed): mean, unbiased covariance + 0.01 I in float64, inverse.
    with torch.inference_mode():
        xf = torch.empty(a.fit, 3, SIZE, SIZE)
        for i in range(a.fit):
            decode_pre(blobs[i], xf[i])
        e = embed(xf).double()
        n, d, h, w = e.shape
        e = e.reshape(n, d, h * w)
        mu = e.mean(0)
        c = e - mu
        cov = torch.einsum("ndp,nep->pde", c, c) / (n - 1) + 0.01 * torch.eye(d, dtype=torch.float64)
        inv_cov = torch.linalg.inv(cov).float().contiguous()  # P x d x d, as Anomalib keeps it
        mu = mu.float().contiguous()  # d x P
    del xf, e, c, cov

    def mahalanobis(emb):
        b, d_, h_, w_ = emb.shape
        delta = (emb.reshape(b, d_, h_ * w_) - mu).permute(2, 0, 1)  # P x B x d
        dist = (torch.matmul(delta, inv_cov) * delta).sum(2).permute(1, 0)
        return dist.reshape(b, 1, h_, w_).clamp(0).sqrt()

    def to_map(dist):
        m = blur(F.interpolate(dist, size=(SIZE, SIZE), mode="bilinear", align_corners=False))
        return m, m.flatten(1).amax(1)

    test = blobs[a.fit:]
    res = {"mode": a.child, "threads": a.threads, "torch": torch.__version__, "model": source,
           "openblas_core": peer_torch.openblas_core(), "synthetic": synthetic, "blur": a.blur,
           "cpu_capability": torch.__config__.show().split("CPU capability usage: ")[1].split("\n")[0],
           "images": a.images, "fit": a.fit, "passes": a.passes, "batch": a.batch, "d": D}
    x1 = torch.empty(1, 3, SIZE, SIZE)
    e2e, pre, sc = [], [], []
    with torch.inference_mode():
        for i in range(3):  # warm-up
            decode_pre(test[i % len(test)], x1[0])
            to_map(mahalanobis(embed(x1)))
        for _ in range(a.passes):
            for b in test:
                t0 = time.perf_counter()
                decode_pre(b, x1[0])
                t1 = time.perf_counter()
                m, s = to_map(mahalanobis(embed(x1)))
                float(s[0])
                t2 = time.perf_counter()
                e2e.append((t2 - t0) * 1e3)
                pre.append((t1 - t0) * 1e3)
                sc.append((t2 - t1) * 1e3)
        res.update(e2e_ms=quantile(e2e, 0.5), e2e_p90_ms=quantile(e2e, 0.9), e2e_min_ms=min(e2e),
                   decode_pre_ms=quantile(pre, 0.5), score_ms=quantile(sc, 0.5))

        # Profile: the score's parts, interleaved round by round (medians).
        decode_pre(test[0], x1[0])
        tb, tm, tp = [], [], []
        for r in range(17):
            t0 = time.perf_counter()
            emb = embed(x1)
            t1 = time.perf_counter()
            dist = mahalanobis(emb)
            t2 = time.perf_counter()
            m, s = to_map(dist)
            float(s[0])
            t3 = time.perf_counter()
            if r >= 2:
                tb.append((t1 - t0) * 1e3), tm.append((t2 - t1) * 1e3), tp.append((t3 - t2) * 1e3)
        res.update(backbone_ms=statistics.median(tb), maha_ms=statistics.median(tm), map_ms=statistics.median(tp))

        # Batch throughput.
        xb = torch.empty(a.batch, 3, SIZE, SIZE)
        nb = max(4, -(-len(e2e) // a.batch))
        per, img = [], 0
        for bi in range(nb + 1):  # the first is a warm-up
            t0 = time.perf_counter()
            for j in range(a.batch):
                decode_pre(test[img % len(test)], xb[j])
                img += 1
            m, s = to_map(mahalanobis(embed(xb)))
            s.tolist()
            if bi:
                per.append((time.perf_counter() - t0) * 1e3 / a.batch)
        res["batch_ms_per_image"] = statistics.median(per)
    print(json.dumps(res))


def describe(r):
    return (f"pytorch {r['torch']} {r['mode']:<7} threads={r['threads']} (dispatch {r['cpu_capability']}, "
            f"OpenBLAS {r['openblas_core']}, blur {r['blur']})\n"
            f"  batch 1: e2e median {r['e2e_ms']:.2f} ms, p90 {r['e2e_p90_ms']:.2f}, min {r['e2e_min_ms']:.2f}; "
            f"decode+pre {r['decode_pre_ms']:.2f}, score {r['score_ms']:.2f}\n"
            f"  profile: backbone+embed {r['backbone_ms']:.2f}, Mahalanobis {r['maha_ms']:.2f}, "
            f"map {r['map_ms']:.2f}; batch {r['batch']}: {r['batch_ms_per_image']:.2f} ms/image")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=("default", "best", "both"), default="best")
    p.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    p.add_argument("--images", type=int, default=IMAGES_DEFAULT, help="timed images")
    p.add_argument("--fit", type=int, default=FIT_DEFAULT, help="fitting images")
    p.add_argument("--passes", type=int, default=1, help="passes over the timed images at batch 1")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--blur", choices=("separable", "2d"), default="separable")
    p.add_argument("--data", default=default_data())
    p.add_argument("--runs", type=int, default=1, help="processes per measurement; the fastest is kept")
    p.add_argument("--json", action="store_true", help="one JSON line on stdout; human lines on stderr")
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    try:
        threads = [int(t) for t in a.threads.split(",")]
    except ValueError:
        p.error("thread counts must be integers")
    if min(threads + [a.images, a.fit, a.passes, a.batch, a.runs]) < 1 or a.fit < 2:
        p.error("counts must be positive (and --fit at least 2)")
    if a.child:
        a.threads = threads[0]
        return run_child(a)

    out = sys.stderr if a.json else sys.stdout
    modes = ["default", "best"] if a.mode == "both" else [a.mode]
    results = []
    for mode in modes:
        for t in threads:
            cmd = [sys.executable, os.path.abspath(__file__), "--child", mode, "--threads", str(t), "--images",
                   str(a.images), "--fit", str(a.fit), "--passes", str(a.passes), "--batch", str(a.batch),
                   "--blur", a.blur, "--data", a.data]
            best = None
            for _ in range(a.runs):
                cp = subprocess.run(cmd, env=peer_torch.child_env(mode, t), stdout=subprocess.PIPE, text=True)
                if cp.returncode != 0:
                    sys.exit(f"peer_padim: {mode} with {t} threads failed (exit {cp.returncode})")
                got = json.loads(cp.stdout.strip().splitlines()[-1])
                if best is None or got["e2e_ms"] < best["e2e_ms"]:
                    best = got
            best["runs"] = a.runs
            results.append(best)
            print(describe(best), file=out, flush=True)
    if a.json:
        print(json.dumps({"peer": "pytorch", "bench": "padim", "results": results}))


if __name__ == "__main__":
    main()
