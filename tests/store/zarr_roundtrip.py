#!/usr/bin/python3
"""The sample store with Python's zarr, both ways (tests/store/test_store.c).

  zarr_roundtrip.py check DIR      every pixel, label and source of a store
                                   libaibox wrote, against the pattern below
  zarr_roundtrip.py write DIR N K  a store of N samples written by zarr,
                                   images chunked K samples at a time

The pattern (the C test uses the same): sample i, channel c, row y, column x
holds (i*31 + c*7 + y*3 + x*5) mod 256; its label is -1 when i mod 4 == 3,
else i mod 3; its metadata source is "s<i>". Exit 77: no zarr here.
"""
import sys

try:
    import numpy as np
    import zarr
    from numcodecs import Zlib
except ImportError as e:
    print("zarr_roundtrip.py: %s" % e, file=sys.stderr)
    sys.exit(77)

C, H, W = 3, 7, 9


def pattern(n):
    i, c, y, x = np.meshgrid(np.arange(n), np.arange(C), np.arange(H), np.arange(W), indexing="ij")
    return ((i * 31 + c * 7 + y * 3 + x * 5) % 256).astype(np.uint8)


def labels(n):
    return np.array([-1 if i % 4 == 3 else i % 3 for i in range(n)], dtype=np.int32)


def check(d):
    g = zarr.open_group(d, mode="r")
    img, lab = g["images"], g["labels"]
    n = img.shape[0]
    if img.dtype != np.uint8 or img.shape[1:] != (C, H, W) or lab.shape != (n,) or lab.dtype != np.int32:
        print("shapes/dtypes: images %s %s, labels %s %s" % (img.shape, img.dtype, lab.shape, lab.dtype))
        return 1
    if img.compressor is None or img.compressor.codec_id != "zlib" or img.chunks != (1, C, H, W):
        print("images compressor %s chunks %s" % (img.compressor, img.chunks))
        return 1
    px, want = img[:], pattern(n)
    if not np.array_equal(px, want):
        bad = np.argwhere(px != want)[0]
        print("pixel %s: %d, want %d" % (tuple(bad), px[tuple(bad)], want[tuple(bad)]))
        return 1
    if not np.array_equal(lab[:], labels(n)):
        print("labels %s, want %s" % (lab[:], labels(n)))
        return 1
    if list(g.attrs["classes"]) != ["a", "b", "c"]:
        print("classes %s" % g.attrs["classes"])
        return 1
    block = lab.chunks[0]
    for i in range(n):
        m = g["meta"][str(i // block)].attrs["samples"][i % block]
        if m.get("source") != "s%d" % i or not m.get("time", 0) > 0:
            print("sample %d metadata %s" % (i, m))
            return 1
    print("%d samples checked" % n)
    return 0


def write(d, n, k):
    g = zarr.open_group(d, mode="w")
    g.attrs["classes"] = ["a", "b", "c"]
    g.create_dataset("images", data=pattern(n), chunks=(k, C, H, W), compressor=Zlib(level=5), fill_value=0)
    g.create_dataset("labels", data=labels(n), chunks=(3,), compressor=None, fill_value=-1)
    meta = g.create_group("meta")
    for b in range((n + 2) // 3):
        meta.create_group(str(b)).attrs["samples"] = [{"source": "s%d" % i, "time": 1.0} for i in range(3 * b, min(n, 3 * b + 3))]
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2]))
    if len(sys.argv) == 5 and sys.argv[1] == "write":
        sys.exit(write(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
