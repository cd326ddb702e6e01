#!/usr/bin/env python3
"""Predicts data-parallel efficiency across nodes from bench/mpi/scaling's
measurements (issue 13, item 6). No numpy needed.

    python3 bench/mpi/model.py RUN.jsonl [RUN.jsonl ...] [--alpha-us 20]
        [--batch MODEL=B ...] [--speedup S] [--also 16] [--target 0.8]

RUN.jsonl: scaling's JSON lines (both runs of bench/mpi/run.sh: 2 ranks x 1
thread and 1 process x 2 threads). From the 2 x 1 thread run per model:

  t_img   compute_ms_per_image: forward + loss + backward per image on one
          thread (both cores of this machine busy, one rank each)
  t_over  what a step costs besides that and the allreduce, independent of
          the batch: the gradients' scaling and Adam (one thread)
  P       the parameter count; gradient bytes G = 4 P (float32)

A node is taken as one such thread (the measured speed; --speedup S models a
node S times faster, which is the same as an S times smaller local batch; the
tables are printed again for a node --also times faster still), with
the run's local batch B (--batch MODEL=B changes it). Per step on N nodes:

  compute  T = B x t_img + t_over
  ring allreduce  C = 2 (N-1) alpha + 2 (N-1)/N x G / bandwidth
           (alpha: per-message latency, default 20 us, as TCP over Ethernet;
           bandwidth: the link's line rate, an optimistic bound; what TCP
           reaches is typically 70-90 % of it)
  efficiency (throughput on N nodes over N x one node's):
    none      T / (T + C)                      allreduce after the backward
    backward  T / (t_f + max(t_b, C) + t_over)  buckets sent as the backward
              produces them (t_f = B t_img / 3, t_b = 2 B t_img / 3: a
              training step costs about 3 forwards); the last bucket's
              transfer is ignored, so an upper bound
    perfect   T / max(T, C)
"""
import json
import sys

NS = [2, 4, 8, 16, 32, 64]
GBPS = [10, 25, 100]


def load(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    rows.append(json.loads(line))
    return rows


def ring_ms(n, nbytes, gbps, alpha_us):
    if n < 2:
        return 0.0
    return 2 * (n - 1) * alpha_us * 1e-3 + 2.0 * (n - 1) / n * nbytes / (gbps * 1e9 / 8) * 1e3


def effs(m, n, gbps, alpha_us, batch, speedup, comp=1.0):
    comp_ms = batch * m["t_img"] / speedup
    t = comp_ms + m["t_over"] / speedup
    c = ring_ms(n, m["bytes"] / comp, gbps, alpha_us)
    none = t / (t + c)
    bwd = t / (comp_ms / 3 + max(2 * comp_ms / 3, c) + m["t_over"] / speedup)
    perfect = t / max(t, c)
    return c, none, bwd, perfect


def detail(order, models, batches, alpha, speedup):
    print("\n### Predicted efficiency on N nodes (no overlap · overlapped with the backward · perfect overlap)\n")
    print("Node = one thread of this machine (%s); ring allreduce of float32 gradients, "
          "latency %.0f µs per message; bandwidth = line rate.\n" % (
              "as measured" if speedup == 1 else "%g× faster than measured" % speedup, alpha))
    for n in order:
        m = models[n]
        b = batches.get(n, m["batch"])
        t = b * m["t_img"] / speedup + m["t_over"] / speedup
        print("**%s**: %s parameters (%.1f MB of gradients), local batch %d, compute %.0f ms per step "
              "(%.1f ms/image + %.1f ms scale + Adam)\n" % (
                  n, format(m["params"], ","), m["bytes"] / 1e6, b, t, m["t_img"] / speedup, m["t_over"] / speedup))
        print("| link | " + " | ".join("N=%d" % k for k in NS) + " |")
        print("|---|" + "---:|" * len(NS))
        for g in GBPS:
            cells = []
            for k in NS:
                c, e0, e1, e2 = effs(m, k, g, alpha, b, speedup)
                cells.append("%.0f ms: %.0f · %.0f · %.0f %%" % (c, 100 * e0, 100 * e1, 100 * e2))
            print("| %d Gb/s | %s |" % (g, " | ".join(cells)))
        print()


def main(argv):
    paths, alpha, speedup, target, batches, also = [], 20.0, 1.0, 0.8, {}, 16.0
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--alpha-us", "--speedup", "--target", "--batch", "--also") and i + 1 < len(argv):
            v = argv[i + 1]
            if a == "--also":
                also = float(v)
            elif a == "--alpha-us":
                alpha = float(v)
            elif a == "--speedup":
                speedup = float(v)
            elif a == "--target":
                target = float(v)
            else:
                k, b = v.split("=")
                batches[k] = int(b)
            i += 2
        elif a.startswith("-"):
            sys.exit(__doc__)
        else:
            paths.append(a)
            i += 1
    if not paths:
        sys.exit(__doc__)
    rows = load(paths)

    # several runs: per model and configuration the run with the faster
    # step (allreduce: the faster median), as bench/run.sh takes the better
    # of two processes on this shared machine
    best = {}
    for r in rows:
        key = (r.get("model"), r["what"], r["ranks"], r.get("threads"))
        t = r.get("step_ms", r.get("ms", r.get("us")))
        if key not in best or t < best[key][0]:
            best[key] = (t, r)
    rows = [r for r in rows if best[(r.get("model"), r["what"], r["ranks"], r.get("threads"))][1] is r]
    models, order = {}, []
    for r in rows:
        name = r.get("model")
        if name not in models:
            models[name] = {}
            order.append(name)
        m = models[name]
        if r["what"] == "allreduce":
            m["params"], m["bytes"], m["ar_ms"], m["ar_ranks"] = r["params"], r["bytes"], r["ms"], r["ranks"]
            m["busbw"] = r["busbw_GBs"]
        elif r["what"] == "allreduce_chunked":
            m["arc_ms"] = r["ms"]
        elif r["what"] == "step_chunked":
            m["dist_chunked"] = r
        elif r["what"] == "allreduce_small":
            m["lat_us"] = r["us"]
        elif r["what"] == "step" and r["ranks"] > 1 and r["threads"] == 1:
            m["dist"] = r
            m["params"], m["bytes"] = r["params"], 4.0 * r["params"]
            m["t_img"] = r["compute_ms_per_image"]
            m["t_over"] = r["scale_ms"] + r["optim_ms"]
            m["batch"] = r["local_batch"]
        elif r["what"] == "step" and r["ranks"] == 1:
            m.setdefault("single", {})[r["threads"]] = r
        elif r["what"] == "train_dist":
            m.setdefault("lib", {})[(r["ranks"], r["threads"])] = r
    order = [n for n in order if "t_img" in models[n]]
    if not order:
        sys.exit("model.py: no step line of a run with 2+ ranks and 1 thread each")

    print("### Measured on this machine (medians)\n")
    print("| model | parameters | gradient MB | allreduce ms, one call (chunked) | 5-double sum µs "
          "| global batch | 2 ranks × 1 thr img/s (chunked) | 1 proc × 2 thr img/s | ratio (chunked) "
          "| allreduce / step, 2×1 (chunked) | compute ms / image (1 thr) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in order:
        m = models[n]
        d = m["dist"]
        s2 = m.get("single", {}).get(2)
        ratio = d["img_s"] / s2["img_s"] if s2 else float("nan")
        dc = m.get("dist_chunked")
        paren = lambda txt: " (%s)" % txt if dc else ""
        print("| %s | %s | %.1f | %s%s | %s | %d | %.2f%s | %s | %s%s | %.1f %%%s | %.1f |" % (
            n, format(m["params"], ","), m["bytes"] / 1e6,
            "%.1f" % m["ar_ms"] if "ar_ms" in m else "–",
            " (%.1f)" % m["arc_ms"] if "arc_ms" in m else "",
            "%.1f" % m["lat_us"] if "lat_us" in m else "–",
            d["global_batch"], d["img_s"], paren("%.2f" % dc["img_s"]) if dc else "",
            "%.2f" % s2["img_s"] if s2 else "–",
            "%.2f×" % ratio if s2 else "–", paren("%.2f×" % (dc["img_s"] / s2["img_s"])) if dc and s2 else "",
            100 * d["allreduce_ms"] / d["step_ms"],
            paren("%.1f %%" % (100 * dc["allreduce_ms"] / dc["step_ms"])) if dc else "", m["t_img"]))
    libs = [(n, k, r) for n in order for k, r in sorted(models[n].get("lib", {}).items())]
    if libs:
        print("\naibox_train_dist on the same batches (second epoch): " + "; ".join(
            "%s %d×%d %.2f img/s" % (n, k[0], k[1], r["img_s"]) for n, k, r in libs))

    for sp in (speedup, speedup * also):
        detail(order, models, batches, alpha, sp)
    print("### Largest N (of %s) at ≥ %.0f %% efficiency without overlap\n" % (
        ", ".join(map(str, NS)), 100 * target))
    f = also
    print("\"%g×\": a node %g times faster than the measured thread (a many-core server; a GPU is faster "
          "still), i.e. %g times less compute per step at the same local batch.\n" % (f, f, f))
    variants = [("node as measured", 1, 1, 1), ("%g×: fp32" % f, 1, 1, f), ("%g×: fp16" % f, 2, 1, f),
                ("%g×: int8" % f, 4, 1, f), ("%g×: 4× batch" % f, 1, 4, f), ("%g×: int8 + 4× batch" % f, 4, 4, f)]
    print("| model | link | " + " | ".join(v[0] for v in variants) + " |")
    print("|---|---|" + "---:|" * len(variants))
    for n in order:
        m = models[n]
        b = batches.get(n, m["batch"])
        for g in GBPS:
            cells = []
            for _, comp, bm, sp in variants:
                ok = [k for k in NS if effs(m, k, g, alpha, b * bm, speedup * sp, comp)[1] >= target]
                # efficiency falls with N: the largest N before the first miss
                best = 1
                for k in NS:
                    if k in ok:
                        best = k
                    else:
                        break
                cells.append("< 2" if best == 1 else str(best) + ("+" if best == NS[-1] else ""))
            print("| %s | %d Gb/s | %s |" % (n, g, " | ".join(cells)))
    print("\n(\"64+\": still at or above the target at 64 nodes. fp16 / int8: 2× / 4× fewer bytes, "
          "their compression cost not counted.)")

    print("\n### Which models are communication-bound (10 Gb/s, N = 64, no overlap)\n")
    print("| model | compute ms / step | allreduce ms / step | compute / allreduce | efficiency | node 16× faster |")
    print("|---|---:|---:|---:|---:|---:|")
    for n in order:
        m = models[n]
        b = batches.get(n, m["batch"])
        t = b * m["t_img"] / speedup + m["t_over"] / speedup
        c, e0, _, _ = effs(m, 64, 10, alpha, b, speedup)
        e16 = effs(m, 64, 10, alpha, b, speedup * 16)[1]
        print("| %s | %.0f | %.0f | %.1f | %.0f %% | %.0f %% |" % (n, t, c, t / c, 100 * e0, 100 * e16))

if __name__ == "__main__":
    main(sys.argv[1:])
