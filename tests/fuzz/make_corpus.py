#!/usr/bin/python3
"""Writes the fuzz seed corpus (tests/fuzz/corpus/{tflite,safetensors}).

Usage: python3 tests/fuzz/make_corpus.py [OUTDIR]   (default: tests/fuzz/corpus)

No TensorFlow or flatbuffers package: a minimal FlatBuffers writer lays
objects out front to back (every uoffset points forward, as the reader
requires) following tensorflow/lite/schema/schema.fbs for the tables the
importer reads. The models are tiny (a few hundred bytes) but valid: they
cover every operator the importer knows, float and uint8/int8 quantised
tensors, per-channel scales and the quantised input. The safetensors seeds
are small hand-written headers: valid files of every dtype, a ResNet-style
header whose shapes do not match, and edge cases the reader must refuse.
Deterministic: the same files on every run.
"""
import json
import os
import struct
import sys

# ------------------------------------------------------------------ FlatBuffers


class Table:
    """fields: list of (id, kind, value); kind: u8 i8 i32 u32 f32 obj."""

    def __init__(self, *fields):
        self.fields = [f for f in fields if f[2] is not None]


class Vec:
    """kind: u8 i32 f32 i64 obj (a vector of offsets)."""

    def __init__(self, kind, items):
        self.kind, self.items = kind, list(items)


class Str:
    def __init__(self, s):
        self.b = s.encode()


SIZES = {"u8": 1, "i8": 1, "i32": 4, "u32": 4, "f32": 4, "i64": 8, "obj": 4}
PACK = {"u8": "<B", "i8": "<b", "i32": "<i", "u32": "<I", "f32": "<f", "i64": "<q"}


class Writer:
    def __init__(self):
        self.buf = bytearray()

    def align(self, n):
        while len(self.buf) % n:
            self.buf.append(0)

    def patch(self, at, target):
        struct.pack_into("<I", self.buf, at, target - at)

    def write(self, obj):
        pending = []
        if isinstance(obj, Table):
            layout, off = [], 4
            for fid, kind, val in obj.fields:
                sz = SIZES[kind]
                off = (off + sz - 1) // sz * sz
                layout.append((fid, kind, val, off))
                off += sz
            tsize = (off + 3) // 4 * 4
            nslots = max([f[0] for f in obj.fields], default=-1) + 1
            slots = [0] * nslots
            for fid, _, _, o in layout:
                slots[fid] = o
            self.align(2)
            vt = len(self.buf)
            self.buf += struct.pack("<HH", 4 + 2 * nslots, tsize)
            for s_ in slots:
                self.buf += struct.pack("<H", s_)
            self.align(8)
            pos = len(self.buf)
            self.buf += struct.pack("<i", pos - vt) + bytes(tsize - 4)
            for fid, kind, val, o in layout:
                if kind == "obj":
                    pending.append((pos + o, val))
                else:
                    struct.pack_into(PACK[kind], self.buf, pos + o, val)
        elif isinstance(obj, Vec):
            self.align(8)
            if len(self.buf) % 8 == 0 and SIZES[obj.kind] == 8:
                self.buf += bytes(4)  # the elements (after the length) 8-aligned
            pos = len(self.buf)
            self.buf += struct.pack("<I", len(obj.items))
            for it in obj.items:
                if obj.kind == "obj":
                    pending.append((len(self.buf), it))
                    self.buf += bytes(4)
                elif obj.kind == "u8":
                    self.buf.append(it & 0xFF)
                else:
                    self.buf += struct.pack(PACK[obj.kind], it)
        elif isinstance(obj, Str):
            self.align(4)
            pos = len(self.buf)
            self.buf += struct.pack("<I", len(obj.b)) + obj.b + b"\0"
        else:
            raise TypeError(obj)
        for at, child in pending:
            self.patch(at, self.write(child))
        return pos


def flatbuffer(root, ident=b"TFL3"):
    w = Writer()
    w.buf += bytes(4) + ident
    w.patch(0, w.write(root))
    w.align(4)
    return bytes(w.buf)


# ------------------------------------------------------------------ TFLite schema
FLOAT32, INT32, UINT8, INT8 = 0, 2, 3, 9
ADD, AVG, CONCAT, CONV, DW, FC, MAXP, RESHAPE, SOFTMAX, PAD, MEAN, SQUEEZE = 0, 1, 2, 3, 4, 9, 17, 22, 25, 34, 40, 43
SAME, VALID = 0, 1
NONE, RELU, RELU6 = 0, 1, 3


class Model:
    def __init__(self):
        self.tensors, self.buffers, self.ops, self.codes = [], [Table()], [], []

    def tensor(self, name, shape, ttype=FLOAT32, data=None, quant=None):
        buf = 0
        if data is not None:
            self.buffers.append(Table((0, "obj", Vec("u8", data))))
            buf = len(self.buffers) - 1
        q = None
        if quant is not None:
            scales, zps, qdim = quant
            q = Table((2, "obj", Vec("f32", scales)), (3, "obj", Vec("i64", zps)), (6, "i32", qdim))
        self.tensors.append(Table((0, "obj", Vec("i32", shape)), (1, "i8", ttype), (2, "u32", buf),
                                  (3, "obj", Str(name)), (4, "obj", q)))
        return len(self.tensors) - 1

    def op(self, code, ins, outs, opts=None):
        if code not in self.codes:
            self.codes.append(code)
        self.ops.append(Table((0, "u32", self.codes.index(code)), (1, "obj", Vec("i32", ins)),
                              (2, "obj", Vec("i32", outs)), (4, "obj", opts)))

    def bytes(self, inp, out):
        sg = Table((0, "obj", Vec("obj", self.tensors)), (1, "obj", Vec("i32", [inp])),
                   (2, "obj", Vec("i32", [out])), (3, "obj", Vec("obj", self.ops)), (4, "obj", Str("main")))
        codes = [Table((0, "i8", min(c, 127)), (2, "i32", 1), (3, "i32", c)) for c in self.codes]
        root = Table((0, "u32", 3), (1, "obj", Vec("obj", codes)), (2, "obj", Vec("obj", [sg])),
                     (3, "obj", Str("libaibox fuzz seed")), (4, "obj", Vec("obj", self.buffers)))
        return flatbuffer(root)


def f32(vals):
    return list(struct.pack("<%df" % len(vals), *vals))


def i32(vals):
    return list(struct.pack("<%di" % len(vals), *vals))


def ramp(n, scale=0.1, off=0.0):
    return [off + scale * (((i * 37) % 17) - 8) / 8.0 for i in range(n)]


def conv_opts(pad, stride, act):
    return Table((0, "i8", pad), (1, "i32", stride), (2, "i32", stride), (3, "i8", act))


def dw_opts(pad, stride, mult, act):
    return Table((0, "i8", pad), (1, "i32", stride), (2, "i32", stride), (3, "i32", mult), (4, "i8", act))


def pool_opts(pad, stride, k, act=NONE):
    return Table((0, "i8", pad), (1, "i32", stride), (2, "i32", stride), (3, "i32", k), (4, "i32", k),
                 (5, "i8", act))


def float_net():
    """conv 3x3/2 SAME RELU6 -> depthwise 3x3 RELU -> avg pool -> reshape -> FC -> softmax."""
    m = Model()
    x = m.tensor("input", [1, 8, 8, 3])
    w1 = m.tensor("w1", [4, 3, 3, 3], data=f32(ramp(108)))
    b1 = m.tensor("b1", [4], data=f32([0.1, -0.1, 0.0, 0.2]))
    a1 = m.tensor("a1", [1, 4, 4, 4])
    m.op(CONV, [x, w1, b1], [a1], conv_opts(SAME, 2, RELU6))
    w2 = m.tensor("w2", [1, 3, 3, 4], data=f32(ramp(36, 0.3)))
    b2 = m.tensor("b2", [4], data=f32([0.0] * 4))
    a2 = m.tensor("a2", [1, 4, 4, 4])
    m.op(DW, [a1, w2, b2], [a2], dw_opts(SAME, 1, 1, RELU))
    a3 = m.tensor("a3", [1, 1, 1, 4])
    m.op(AVG, [a2], [a3], pool_opts(VALID, 4, 4))
    shp = m.tensor("shape", [2], INT32, data=i32([1, 4]))
    a4 = m.tensor("a4", [1, 4])
    m.op(RESHAPE, [a3, shp], [a4], Table((0, "obj", Vec("i32", [1, 4]))))
    w3 = m.tensor("w3", [3, 4], data=f32(ramp(12, 0.5)))
    b3 = m.tensor("b3", [3], data=f32([0.0, 0.1, -0.1]))
    a5 = m.tensor("logits", [1, 3])
    m.op(FC, [a4, w3, b3], [a5], Table((0, "i8", NONE)))
    y = m.tensor("probs", [1, 3])
    m.op(SOFTMAX, [a5], [y], Table((0, "f32", 1.0)))
    return m.bytes(x, y)


def quant_net(ttype=UINT8, per_channel=True):
    """Quantised input -> PAD -> conv VALID (per-channel int8 filter) -> max pool -> MEAN -> squeeze -> FC."""
    m = Model()
    zp_act = 128 if ttype == UINT8 else 0
    q = ([0.02], [zp_act], 0)
    x = m.tensor("input", [1, 6, 6, 2], ttype, quant=([1 / 127.5], [zp_act], 0))
    pads = m.tensor("pads", [4, 2], INT32, data=i32([0, 0, 1, 1, 1, 1, 0, 0]))
    p = m.tensor("padded", [1, 8, 8, 2], ttype, quant=([1 / 127.5], [zp_act], 0))
    m.op(PAD, [x, pads], [p])
    wq = ([0.01, 0.02, 0.03], [0, 0, 0], 0) if per_channel else ([0.02], [0], 0)
    w = m.tensor("w", [3, 3, 3, 2], INT8, data=[(i * 29) % 255 - 127 for i in range(54)], quant=wq)
    bscales = [0.01 / 127.5, 0.02 / 127.5, 0.03 / 127.5] if per_channel else [0.02 / 127.5]
    b = m.tensor("b", [3], INT32, data=i32([100, -50, 25]), quant=(bscales, [0] * len(bscales), 0))
    c = m.tensor("conv", [1, 6, 6, 3], ttype, quant=q)
    m.op(CONV, [p, w, b], [c], conv_opts(VALID, 1, RELU))
    mp = m.tensor("pool", [1, 3, 3, 3], ttype, quant=q)
    m.op(MAXP, [c], [mp], pool_opts(VALID, 2, 2))
    ax = m.tensor("axes", [2], INT32, data=i32([1, 2]))
    mean = m.tensor("mean", [1, 1, 1, 3], ttype, quant=q)
    m.op(MEAN, [mp, ax], [mean], Table((0, "u8", 1)))
    sq = m.tensor("squeezed", [1, 3], ttype, quant=q)
    m.op(SQUEEZE, [mean], [sq], Table((0, "obj", Vec("i32", [1, 2]))))
    fw = m.tensor("fc_w", [2, 3], ttype, data=[(i * 53) % 256 for i in range(6)], quant=([0.05], [zp_act], 0))
    fb = m.tensor("fc_b", [2], INT32, data=i32([7, -7]), quant=([0.001], [0], 0))
    y = m.tensor("out", [1, 2], ttype, quant=([0.1], [zp_act], 0))
    m.op(FC, [sq, fw, fb], [y], Table((0, "i8", NONE)))
    return m.bytes(x, y)


def branch_net():
    """Two 1x1 convs on one input, ADD and CONCATENATION of the branches, MEAN to a vector."""
    m = Model()
    x = m.tensor("input", [1, 4, 4, 1])
    outs = []
    for k in range(2):
        w = m.tensor("w%d" % k, [2, 1, 1, 1], data=f32([0.5 + k, -0.25]))
        a = m.tensor("a%d" % k, [1, 4, 4, 2])
        m.op(CONV, [x, w, -1], [a], conv_opts(SAME, 1, NONE))
        outs.append(a)
    s = m.tensor("sum", [1, 4, 4, 2])
    m.op(ADD, outs, [s], Table((0, "i8", RELU)))
    cat = m.tensor("cat", [1, 4, 4, 4])
    m.op(CONCAT, [s, outs[0]], [cat], Table((0, "i32", 3), (1, "i8", NONE)))
    ax = m.tensor("axes", [2], INT32, data=i32([1, 2]))
    y = m.tensor("mean", [1, 1, 1, 4])
    m.op(MEAN, [cat, ax], [y], Table((0, "u8", 1)))
    return m.bytes(x, y)


def unsupported_net():
    """A RESIZE_BILINEAR (23) operator: refused as unsupported, naming it."""
    m = Model()
    x = m.tensor("input", [1, 4, 4, 1])
    y = m.tensor("resized", [1, 8, 8, 1])
    m.op(23, [x], [y])
    return m.bytes(x, y)


# ------------------------------------------------------------------ safetensors
def st_file(entries, meta=True, pad=True):
    """entries: list of (name, dtype, shape, raw bytes)."""
    header, blobs, off = ({"__metadata__": {"format": "pt"}} if meta else {}), [], 0
    for name, dt, shape, raw in entries:
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def fl(n, fmt="<%df", scale=0.01):
    return struct.pack(fmt % n, *[scale * ((i % 13) - 6) for i in range(n)])


def safetensors_seeds():
    s = {}
    s["valid_dtypes"] = st_file([
        ("a", "F32", [2, 3], fl(6)),
        ("b", "F16", [2], bytes([0x00, 0x3C, 0x00, 0xC0])),
        ("c", "BF16", [], bytes([0x40, 0x40])),
        ("d", "F64", [2], fl(2, "<%dd")),
        ("n", "I64", [], struct.pack("<q", 42)),
        ("u", "U8", [3], bytes([1, 2, 3])),
        ("z", "F32", [0, 4], b""),
    ])
    s["empty"] = st_file([], meta=False, pad=False)
    s["bn_head"] = st_file([
        ("bn1.weight", "F32", [4], fl(4)), ("bn1.bias", "F32", [4], fl(4)),
        ("bn1.running_mean", "F32", [4], fl(4)), ("bn1.running_var", "F32", [4], struct.pack("<4f", 1, 2, 0.5, 0)),
        ("bn1.num_batches_tracked", "I64", [], struct.pack("<q", 3)),
        ("fc.weight", "F32", [2, 512], bytes(2 * 512 * 4)), ("fc.bias", "F32", [2], fl(2)),
    ])
    # Bottleneck-shaped names (recognition paths) with small data
    s["bottleneck_wide"] = st_file([
        ("layer1.0.conv1.weight", "F16", [128, 64, 1, 1], bytes(128 * 64 * 2)),
        ("layer1.0.conv3.weight", "BF16", [1, 1], bytes(2)),
        ("fc.weight", "F32", [1, 2048], bytes(2048 * 4)),
    ])
    s["bottleneck_r50"] = st_file([
        ("layer1.0.conv1.weight", "BF16", [64, 64, 1, 1], bytes(64 * 64 * 2)),
        ("layer1.0.conv3.weight", "F32", [256, 1, 1, 1], fl(256)),
        ("conv1.weight", "F16", [64, 3, 7, 7], bytes(64 * 3 * 49 * 2)),
        ("fc.weight", "BF16", [3, 2048], bytes(3 * 2048 * 2)),
        ("fc.bias", "F32", [3], fl(3)),
    ])
    s["overlap_offsets"] = (lambda h: struct.pack("<Q", len(h)) + h + bytes(16))(
        b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
        b'"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}')
    s["bad_span"] = (lambda h: struct.pack("<Q", len(h)) + h + bytes(8))(
        b'{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}')
    s["dup_names"] = (lambda h: struct.pack("<Q", len(h)) + h + bytes(8))(
        b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}')
    s["f16_special"] = st_file([("h", "F16", [4], bytes([0x01, 0x00, 0xFF, 0x7B, 0x00, 0x80, 0x00, 0x7C]))])
    s["nan_var"] = st_file([
        ("bn1.running_var", "F32", [2], struct.pack("<2f", float("nan"), -1.0)),
        ("fc.weight", "F32", [1, 512], bytes(512 * 4)),
    ])
    return s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    tfl = {
        "float_conv_dw_fc_softmax.tflite": float_net(),
        "quant_u8_pad_conv_pool_mean.tflite": quant_net(UINT8, True),
        "quant_i8_per_tensor.tflite": quant_net(INT8, False),
        "branch_add_concat.tflite": branch_net(),
        "unsupported_resize.tflite": unsupported_net(),
    }
    sts = {k + ".safetensors": v for k, v in safetensors_seeds().items()}
    for sub, files in (("tflite", tfl), ("safetensors", sts)):
        d = os.path.join(out, sub)
        os.makedirs(d, exist_ok=True)
        for name, b in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(b)
    print("make_corpus: %d TFLite and %d safetensors seeds in %s" % (len(tfl), len(sts), out), file=sys.stderr)


if __name__ == "__main__":
    main()
