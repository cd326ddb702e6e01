"""Compares two runs of aibox-infer (JSON lines) on the same images: x86 and
aarch64. Usage: agree.py NAME X86.jsonl ARM64.jsonl EXACT

Every line must name the same file with the same label / verdict and the
same regions; the numbers a decision rests on (the top-1 confidence, the
anomaly score and norm_score, the threshold) must agree within TOL relative,
every other probability within TOL absolute (a probability of 3e-5 printed
to two digits has no relative precision to compare); EXACT=1: all equal.
The timing field "ms" is not compared. Prints one line with the largest
differences; exits 1 on a disagreement."""
import json
import sys

TOL = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-5
KEY = ("confidence", "score", "norm_score", "threshold")


def walk(a, b, path, out):
    """Collects (path, x86, arm64) for every differing leaf."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            out.append((path, sorted(a), sorted(b), float("inf")))
            return
        for k in a:
            if k != "ms":
                walk(a[k], b[k], path + "." + k, out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append((path, len(a), len(b), float("inf")))
            return
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, "%s[%d]" % (path, i), out)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if a == b:
            d = 0.0
        elif path.rsplit(".", 1)[-1] in KEY or ".regions" in path:
            d = abs(a - b) / max(abs(a), abs(b), 1e-30)
        else:
            d = abs(a - b)
        out.append((path, a, b, d))
    elif a != b:
        out.append((path, a, b, float("inf")))


def main():
    name, fx, fa, exact = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    with open(fx) as f:
        x = [json.loads(l) for l in f if l.strip()]
    with open(fa) as f:
        a = [json.loads(l) for l in f if l.strip()]
    if not x or len(x) != len(a):
        print("agree: %s: %d lines on x86, %d on arm64" % (name, len(x), len(a)))
        return 1
    diffs = []
    for lx, la in zip(x, a):
        if "error" in lx or "error" in la:
            print("agree: %s: an error record: %s / %s" % (name, lx, la))
            return 1
        walk(lx, la, lx.get("file", "?"), diffs)
    worst = max(diffs, key=lambda d: d[3]) if diffs else ("-", 0, 0, 0.0)
    limit = 0.0 if exact else TOL
    bad = [d for d in diffs if d[3] > limit]
    tops = ", ".join("%s %s %.6f" % (l["file"].rsplit("/", 1)[-1], l.get("label", l.get("verdict")),
                                      l.get("confidence", l.get("score", float("nan")))) for l in a)
    print("agree: %s: %d images, %d numbers compared, largest difference %.3g (%s; limit %g): %s [%s]"
          % (name, len(x), len(diffs), worst[3], worst[0], limit, "ok" if not bad else "DIFFERENT", tops))
    for d in bad[:5]:
        print("agree:   %s: x86 %r, arm64 %r (difference %.3g)" % d)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
