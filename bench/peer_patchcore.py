#!/usr/bin/python3
"""PyTorch peer for bench_patchcore: PatchCore written the straightforward way.

The same pipeline and shapes as bench/bench_patchcore.c, as Anomalib's
PatchCore computes it: the same JPEG tiles (the timed ones are
bench_padim's at its default --fit 16; the fit images come from the other
files at an even stride, the first N for a fit of N), read into memory first;
per image PIL decode + RGB + resize to 224 (PIL bilinear) + ImageNet
normalisation; a plain-torch ResNet-18 (tests/io/torch_parity.build("resnet18"):
torchvision's structure, random weights, seed 1), eval mode,
torch.inference_mode; layer2 and layer3, each through AvgPool2d(3, 1, 1),
layer3 upsampled to layer2's 28 x 28 grid (F.interpolate bilinear,
align_corners=False), concatenated (384 channels), one row per patch.

Fit (a child process per --fit size, on --fit-threads threads): the features
of the good images in batches of 8 (a list, then torch.cat: the memory bank
before subsampling), a seeded Gaussian random projection to 128 dimensions
(N(0, 1/128); Anomalib uses a sparse projection, whose size at eps 0.9 would
be ~300 dimensions here), and Anomalib's KCenterGreedy loop: per chosen
centre F.pairwise_distance of all projected points to it, torch.minimum into
the running minimum, argmax, that point's minimum set to 0. The first centre
is drawn from the seed and kept (as the library does). Greedy selection is
incremental, so one run to the largest coreset gives every smaller one as a
prefix: the fit time of a share is the features + the projection + the loop
up to its size (the library fits each share separately). Peak memory: the
growth of the process's VmHWM over the fit (reset through
/proc/self/clear_refs first when the kernel allows; one figure per fit size,
the largest share's, which holds the same bank and projection). With
--greedy-budget S the loop stops after S seconds; the remaining shares' fit
times are then extrapolated linearly (each iteration costs the same: one pass
over the N x 128 projection) and marked "estimated", and their banks are
completed with random points so that scoring (whose speed depends only on
the bank's size) can still be timed.

Inference (a child process per thread count, torch.set_num_threads(T), the
banks of the --score-fits sizes handed over in a temporary file): per image
decode + preprocess, then the features, torch.cdist against the bank +
min over it (the patch scores and nearest entries), Anomalib's image score
(the largest patch score re-weighted: torch.cdist of its nearest bank entry
to the bank, topk 9 smallest, torch.cdist of the patch to those, weight
1 - softmax(...)[0]), the map (F.interpolate bilinear to 224, Gaussian blur
sigma 4, kernel 33, reflect padding; separable by default, --blur 2d runs
Anomalib's single 33 x 33 convolution). Reports per fit size, share and
thread count the median, 90th percentile and minimum ms per image end to
end at batch 1, the split (decode + preprocess / score), and a profile of
the score (features, nearest neighbours, re-weighting, map; medians of
separate interleaved runs). With --runs N each thread count takes, per
share, the fastest (by median end to end) of N processes.

Defaults: --fit 200, --coresets 0.01,0.1,0.25, --threads 1,2, --images 50,
--mode best, no greedy budget. The straightforward greedy costs about
share * N^2 * 128 operations for N = 784 * images patches: at 200 images the
25 % share takes tens of minutes, at 800 images hours; give --greedy-budget
(seconds) or fewer --coresets for big fits.

Modes as bench/peer_torch.py (its child_env is reused): 'best' =
ATEN_CPU_CAPABILITY=avx512, OPENBLAS_CORETYPE unset, OPENBLAS_NUM_THREADS=1,
OMP_NUM_THREADS=N, glibc malloc tunables; 'default' = the machine's
environment. Run with /usr/bin/python3 (Debian's python3-torch). Human lines
go to stdout, or to stderr with --json, which prints one JSON line of results
on stdout. Decoding needs PIL (Debian python3-pil).
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import peer_torch  # noqa: E402  (child_env: the default/best environments; openblas_core)
# bench_padim's peer: its images (names, even stride, synthetic tiles), ResNet-18, preprocessing, blur, quantile
from peer_padim import (SIZE, blur_fn, decode_pre_fn, default_data, even_pick, jpg_names,  # noqa: E402
                        quantile, resnet18, synthetic_jpegs)

PROJ, NEIGHBOURS, SIGMA, FIT_BATCH = 128, 9, 4.0, 8
PADIM_FIT = 16  # bench_padim's default --fit: the timed images are its


def pick_files(data, images, max_fit):
    """bench_patchcore.c's choice: sorted *.jpg names; timed = bench_padim's at
    --fit 16 (files[k * n / (16 + images)], k >= 16); the others, in name
    order, are the pool the fit images come from. None when too few."""
    names = jpg_names(data)
    n, need = len(names), PADIM_FIT + images
    if n < need or n - images < max_fit:
        return None
    at = [even_pick(k, n, need) for k in range(PADIM_FIT, need)]
    used = set(at)
    timed = [os.path.join(data, names[i]) for i in at]
    rest = [os.path.join(data, names[i]) for i in range(n) if i not in used]
    return timed, rest


def fit_subset(rest, n):
    """The n fit images: rest[j * len(rest) / n]."""
    return [rest[even_pick(j, len(rest), n)] for j in range(n)]


def synthetic_split(images, max_fit):
    """bench_padim.c's synthetic stand-ins (peer_padim.synthetic_jpegs, needs PIL),
    split as bench_patchcore.c splits its own: k in [16, 16 + images) timed."""
    tiles = synthetic_jpegs(PADIM_FIT + images + max_fit)
    return tiles[PADIM_FIT:PADIM_FIT + images], tiles[:PADIM_FIT] + tiles[PADIM_FIT + images:]


def load_images(a, max_fit):
    """(timed blobs, the fit pool: paths or blobs, synthetic?)"""
    picked = pick_files(a.data, a.images, max_fit)
    if picked is None:
        timed, rest = synthetic_split(a.images, max_fit)
        return timed, rest, True
    timed, rest = picked
    return [open(f, "rb").read() for f in timed], rest, False


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def bank_size(share, n):
    """The library's rule: round(share * N), at least 1, at most N."""
    return max(1, min(n, int(math.floor(share * n + 0.5))))


class Net:
    """The plain-torch ResNet-18, preprocessing, Anomalib's PatchCore pieces."""

    def __init__(self, a):
        import torch
        import torch.nn.functional as F
        self.torch, self.F = torch, F
        self.decode_pre = decode_pre_fn("peer_patchcore")  # (jpeg bytes, out)
        torch.manual_seed(1)
        self.model, self.source = resnet18()
        self.pool = torch.nn.AvgPool2d(3, 1, 1)
        self.blur = blur_fn(SIGMA, a.blur)

    def embed(self, x):
        """B x 384 x 28 x 28: Anomalib's generate_embedding (bilinear upsampling)."""
        m, F = self.model, self.F
        y = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        l2 = m.layer2(m.layer1(y))
        l3 = m.layer3(l2)
        e2, e3 = self.pool(l2), self.pool(l3)
        e3 = F.interpolate(e3, size=e2.shape[-2:], mode="bilinear", align_corners=False)
        return self.torch.cat([e2, e3], 1)

    @staticmethod
    def rows(e):
        """Anomalib's reshape_embedding: B x D x h x w -> (B h w) x D."""
        return e.permute(0, 2, 3, 1).reshape(-1, e.shape[1])

    def nearest(self, feats, bank):
        """Patch scores and nearest entries: torch.cdist + min (Anomalib, 1 neighbour)."""
        return self.torch.cdist(feats, bank, p=2.0).min(1)

    def image_score(self, patch_scores, locations, feats, bank):
        """Anomalib's compute_anomaly_score, batch 1."""
        torch = self.torch
        top = torch.argmax(patch_scores)
        score = patch_scores[top]
        nn_sample = bank[locations[top]].unsqueeze(0)
        k = min(NEIGHBOURS, bank.shape[0])
        if k <= 1:
            return score
        _, support = torch.cdist(nn_sample, bank, p=2.0).topk(k=k, largest=False, dim=1)
        d = torch.cdist(feats[top].view(1, 1, -1), bank[support], p=2.0)  # 1 x 1 x k
        weights = (1 - self.F.softmax(d.squeeze(1), 1))[..., 0]
        return weights[0] * score

    def to_map(self, patch_scores, gh, gw):
        F = self.F
        m = F.interpolate(patch_scores.view(1, 1, gh, gw), size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        return self.blur(m)

    def score(self, x, bank):
        e = self.embed(x)
        feats = self.rows(e)
        ps, loc = self.nearest(feats, bank)
        s = self.image_score(ps, loc, feats, bank)
        m = self.to_map(ps, e.shape[2], e.shape[3])
        return m, float(s)


def run_fit(a):
    """One fit size: features, projection, greedy to the largest share; JSON out."""
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    shares = sorted(float(c) for c in a.coresets.split(","))
    n_img = a.fit
    _, rest, synthetic = load_images(a, a.max_fit)
    fit = fit_subset(rest, n_img)
    blobs = [b if isinstance(b, bytes) else open(b, "rb").read() for b in fit]
    net = Net(a)

    with torch.inference_mode():
        rss0 = status_kb("VmRSS")
        hwm_reset = reset_hwm()
        t0 = time.perf_counter()
        xb = torch.empty(FIT_BATCH, 3, SIZE, SIZE)
        chunks = []
        for i in range(0, n_img, FIT_BATCH):
            nb = min(FIT_BATCH, n_img - i)
            for j in range(nb):
                net.decode_pre(blobs[i + j], xb[j])
            chunks.append(net.rows(net.embed(xb[:nb])))
        emb = torch.cat(chunks, 0)  # N x D: the bank before subsampling
        del chunks
        t1 = time.perf_counter()
        n, dims = emb.shape
        g = torch.Generator().manual_seed(1)
        proj = torch.randn(dims, PROJ, generator=g) / math.sqrt(PROJ)
        y = emb @ proj
        t2 = time.perf_counter()
        ks = [bank_size(c, n) for c in shares]
        kmax = max(ks)
        idx = int(torch.randint(n, (1,), generator=g))
        selected = [idx]
        at = {1: time.perf_counter()}  # selected count -> time
        min_d = None
        stopped = None
        for _ in range(kmax - 1):
            d = F.pairwise_distance(y, y[idx:idx + 1], p=2)
            min_d = d if min_d is None else torch.minimum(min_d, d)
            idx = int(torch.argmax(min_d))
            min_d[idx] = 0
            selected.append(idx)
            now = time.perf_counter()
            if len(selected) in ks:
                at[len(selected)] = now
            if a.greedy_budget and now - t2 > a.greedy_budget:
                stopped = len(selected)
                at[stopped] = now
                break
        t3 = time.perf_counter()
        hwm = status_kb("VmHWM")
        done = len(selected)
        per_iter = (t3 - t2) / max(1, done - 1)
        if done < kmax:  # the rest at random, only so that scoring can be timed at the right bank size
            left = torch.ones(n, dtype=torch.bool)
            left[torch.tensor(selected)] = False
            pool = left.nonzero().squeeze(1)
            pool = pool[torch.randperm(pool.numel(), generator=g)[:kmax - done]]
            selected += pool.tolist()
        sel = torch.tensor(selected)
        fits = []
        for c, k in zip(shares, ks):
            estimated = k > done
            # measured up to k centres, or (k - 1) iterations at the mean cost
            greedy_s = 0.0 if k == 1 else (k - 1) * per_iter if estimated else at[k] - t2
            fits.append({"fit": n_img, "coreset": c, "patches": n, "dims": dims, "bank": k,
                         "bank_mb": k * dims * 4 / 1048576, "features_s": t1 - t0, "project_s": t2 - t1,
                         "greedy_s": greedy_s, "select_s": t2 - t1 + greedy_s, "fit_s": t2 - t0 + greedy_s,
                         "estimated": estimated})
        res = {"mode": a.child_fit, "threads": a.threads, "fit": n_img, "synthetic": synthetic,
               "torch": torch.__version__, "model": net.source, "greedy_done": done,
               "greedy_stopped": stopped is not None, "greedy_ms_per_centre": per_iter * 1e3,
               "bank_before_mb": n * dims * 4 / 1048576, "rss_before_mb": rss0 / 1024, "peak_rss_mb": hwm / 1024,
               "peak_growth_mb": (hwm - rss0) / 1024, "hwm_reset": hwm_reset, "fits": fits}
        if a.bank:
            torch.save({repr(c): emb[sel[:k]].clone() for c, k in zip(shares, ks)}, a.bank)
    print(json.dumps(res))


def run_score(a):
    """One thread count: every share's bank of one fit size; JSON out."""
    import torch
    torch.set_num_threads(a.threads)
    timed, _, synthetic = load_images(a, a.max_fit)
    net = Net(a)
    banks = torch.load(a.bank)
    out = []
    x1 = torch.empty(1, 3, SIZE, SIZE)
    with torch.inference_mode():
        for key in sorted(banks, key=float):
            bank = banks[key].contiguous()
            for i in range(3):  # warm-up
                net.decode_pre(timed[i % len(timed)], x1[0])
                net.score(x1, bank)
            e2e, pre, sc = [], [], []
            for _ in range(a.passes):
                for b in timed:
                    t0 = time.perf_counter()
                    net.decode_pre(b, x1[0])
                    t1 = time.perf_counter()
                    m, s = net.score(x1, bank)
                    t2 = time.perf_counter()
                    if not math.isfinite(s):
                        sys.exit("peer_patchcore: non-finite score")
                    e2e.append((t2 - t0) * 1e3), pre.append((t1 - t0) * 1e3), sc.append((t2 - t1) * 1e3)
            r = {"fit": a.fit, "coreset": float(key), "bank": bank.shape[0], "threads": a.threads,
                 "mode": a.child_score, "synthetic": synthetic, "torch": torch.__version__, "model": net.source,
                 "openblas_core": peer_torch.openblas_core(), "blur": a.blur,
                 "cpu_capability": torch.__config__.show().split("CPU capability usage: ")[1].split("\n")[0],
                 "e2e_ms": quantile(e2e, 0.5), "e2e_p90_ms": quantile(e2e, 0.9), "e2e_min_ms": min(e2e),
                 "decode_pre_ms": quantile(pre, 0.5), "score_ms": quantile(sc, 0.5)}
            # Profile: the score's parts, interleaved round by round (medians),
            # 3 to 15 rounds of about 3 s at most, after two warm-up rounds.
            reps = max(3, min(15, int(3000 / (r["score_ms"] + 1e-3))))
            net.decode_pre(timed[0], x1[0])
            tf, tn, tr, tm = [], [], [], []
            for i in range(reps + 2):
                t0 = time.perf_counter()
                e = net.embed(x1)
                feats = net.rows(e)
                t1 = time.perf_counter()
                ps, loc = net.nearest(feats, bank)
                t2 = time.perf_counter()
                float(net.image_score(ps, loc, feats, bank))
                t3 = time.perf_counter()
                net.to_map(ps, e.shape[2], e.shape[3])
                t4 = time.perf_counter()
                if i >= 2:
                    tf.append((t1 - t0) * 1e3), tn.append((t2 - t1) * 1e3)
                    tr.append((t3 - t2) * 1e3), tm.append((t4 - t3) * 1e3)
            r.update(features_ms=statistics.median(tf), nn_ms=statistics.median(tn),
                     reweight_ms=statistics.median(tr), map_ms=statistics.median(tm))
            out.append(r)
    print(json.dumps(out))


def child(cmd, env, what):
    cp = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    if cp.returncode != 0:
        sys.exit(f"peer_patchcore: {what} failed (exit {cp.returncode})")
    return json.loads(cp.stdout.strip().splitlines()[-1])


def describe_fit(f, r):
    est = " (ESTIMATED: greedy budget spent)" if f["estimated"] else ""
    return (f"fit {f['fit']} images ({f['patches']} patches), coreset {f['coreset']:g}: bank {f['bank']} entries, "
            f"{f['bank_mb']:.1f} MB; fit {f['fit_s']:.2f} s{est} (features {f['features_s']:.2f}, projection "
            f"{f['project_s']:.2f}, greedy {f['greedy_s']:.2f}); peak RSS +{r['peak_growth_mb']:.0f} MB "
            f"(of the fit to the largest share{'' if r['hwm_reset'] else '; VmHWM NOT reset'})")


def describe(t):
    return (f"  pytorch {t['torch']} {t['mode']} threads={t['threads']} (dispatch {t['cpu_capability']}, OpenBLAS "
            f"{t['openblas_core']}, blur {t['blur']}): e2e median {t['e2e_ms']:.2f} ms, p90 {t['e2e_p90_ms']:.2f}, "
            f"min {t['e2e_min_ms']:.2f}; decode+pre {t['decode_pre_ms']:.2f}, score {t['score_ms']:.2f}\n"
            f"    profile: features {t['features_ms']:.2f}, cdist+min {t['nn_ms']:.2f}, re-weighting "
            f"{t['reweight_ms']:.2f}, map {t['map_ms']:.2f}")


def ints(p, s, what):
    try:
        v = [int(t) for t in s.split(",")]
    except ValueError:
        p.error(f"{what} must be integers")
    if min(v) < 1:
        p.error(f"{what} must be positive")
    return v


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=("default", "best"), default="best")
    p.add_argument("--threads", default="1,2", help="thread counts of the inference, comma-separated (1,2)")
    p.add_argument("--images", type=int, default=50, help="timed images (50; bench_padim's)")
    p.add_argument("--fit", default="200", help="fit sizes in good images, comma-separated (200)")
    p.add_argument("--coresets", default="0.01,0.1,0.25", help="coreset shares, comma-separated (0.01,0.1,0.25)")
    p.add_argument("--score-fits", help="fit sizes whose banks are timed at inference (default: the smallest --fit)")
    p.add_argument("--fit-threads", type=int, help="threads of the fits (default: the largest of --threads)")
    p.add_argument("--greedy-budget", type=float, default=0,
                   help="seconds of greedy selection per fit, then extrapolated (0: no limit)")
    p.add_argument("--passes", type=int, default=1, help="passes over the timed images at batch 1")
    p.add_argument("--blur", choices=("separable", "2d"), default="separable")
    p.add_argument("--data", default=default_data())
    p.add_argument("--runs", type=int, default=1, help="processes per inference measurement; the fastest is kept")
    p.add_argument("--json", action="store_true", help="one JSON line on stdout; human lines on stderr")
    p.add_argument("--child-fit", help=argparse.SUPPRESS)
    p.add_argument("--child-score", help=argparse.SUPPRESS)
    p.add_argument("--bank", help=argparse.SUPPRESS)
    p.add_argument("--max-fit", type=int, help=argparse.SUPPRESS)  # the largest fit: the image split depends on it
    a = p.parse_args()
    threads = ints(p, a.threads, "thread counts")
    fits = ints(p, a.fit, "fit sizes")
    try:
        shares = [float(c) for c in a.coresets.split(",")]
    except ValueError:
        p.error("coreset shares must be numbers")
    if not all(0 < c <= 1 for c in shares):
        p.error("coreset shares must be in (0, 1]")
    if min(a.images, a.passes, a.runs) < 1 or a.greedy_budget < 0:
        p.error("counts must be positive")
    if a.child_fit or a.child_score:
        a.threads, a.fit = threads[0], fits[0]
        return run_fit(a) if a.child_fit else run_score(a)
    score_fits = ints(p, a.score_fits, "--score-fits") if a.score_fits else [min(fits)]
    if not set(score_fits) <= set(fits):
        p.error("--score-fits must be among the --fit sizes")
    fit_threads = a.fit_threads or max(threads)

    out = sys.stderr if a.json else sys.stdout
    me = os.path.abspath(__file__)
    common = ["--max-fit", str(max(fits)), "--images", str(a.images), "--coresets", a.coresets, "--passes", str(a.passes), "--blur", a.blur,
              "--data", a.data]
    records = []
    with tempfile.TemporaryDirectory(prefix="peer_patchcore.") as tmp:
        for n in fits:
            bank = os.path.join(tmp, f"bank-{n}.pt")
            cmd = [sys.executable, me, "--child-fit", a.mode, "--threads", str(fit_threads), "--fit", str(n),
                   "--greedy-budget", str(a.greedy_budget)] + common
            if n in score_fits:
                cmd += ["--bank", bank]
            fr = child(cmd, peer_torch.child_env(a.mode, fit_threads), f"the fit of {n} images")
            for f in fr["fits"]:
                f.update(threads=fit_threads, peak_rss_mb=fr["peak_rss_mb"], peak_growth_mb=fr["peak_growth_mb"],
                         rss_before_mb=fr["rss_before_mb"], hwm_reset=fr["hwm_reset"], synthetic=fr["synthetic"],
                         greedy_ms_per_centre=fr["greedy_ms_per_centre"], results=[])
                records.append(f)
            for f in fr["fits"]:
                print(describe_fit(f, fr), file=out, flush=True)
            if n not in score_fits:
                continue
            for t in threads:
                cmd = [sys.executable, me, "--child-score", a.mode, "--threads", str(t), "--fit", str(n),
                       "--bank", bank] + common
                best = None
                for _ in range(a.runs):
                    got = child(cmd, peer_torch.child_env(a.mode, t), f"scoring on {t} threads")
                    best = got if best is None else [min(x, y, key=lambda r: r["e2e_ms"]) for x, y in zip(best, got)]
                for r in best:
                    r["runs"] = a.runs
                    f = next(f for f in records if f["fit"] == n and abs(f["coreset"] - r["coreset"]) < 1e-12)
                    f["results"].append(r)
                    print(f"fit {n}, coreset {r['coreset']:g} (bank {r['bank']}):\n" + describe(r), file=out,
                          flush=True)
    if a.json:
        print(json.dumps({"peer": "pytorch", "bench": "patchcore", "mode": a.mode, "fit_threads": fit_threads,
                          "images": a.images, "passes": a.passes, "fits": records}))


if __name__ == "__main__":
    main()
