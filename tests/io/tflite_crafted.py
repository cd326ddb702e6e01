#!/usr/bin/python3
"""Crafted TensorFlow Lite files for test_tflite's memory-bound tests.

Usage: python3 tests/io/tflite_crafted.py OUTDIR

Each file is small or cheap to write but, read naively, would make an
importer allocate far more than its size; libaibox must refuse each with one
line and little memory. Built with make_corpus.py's FlatBuffer writer, plus
shared tables (many offsets naming one table) and raw byte vectors.
"""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz"))
import make_corpus as mc  # noqa: E402


class Shared:
    """A child written once; every later reference points at the same bytes."""

    def __init__(self, obj):
        self.obj, self.pos = obj, None


class Raw(mc.Vec):
    """A u8 vector given as bytes (fast for megabytes)."""

    def __init__(self, data):
        super().__init__("u8", [])
        self.data = data


class Writer(mc.Writer):
    def write(self, obj):
        if isinstance(obj, Shared):
            if obj.pos is None:
                obj.pos = self.write(obj.obj)
            return obj.pos
        if isinstance(obj, Raw):
            self.align(8)
            pos = len(self.buf)
            self.buf += struct.pack("<I", len(obj.data)) + obj.data
            return pos
        return super().write(obj)


def flatbuffer(root):
    w = Writer()
    w.buf += bytes(4) + b"TFL3"
    w.patch(0, w.write(root))
    w.align(4)
    return bytes(w.buf)


def model(tensors, ops, codes, buffers, inp, out):
    sg = mc.Table((0, "obj", mc.Vec("obj", tensors)), (1, "obj", mc.Vec("i32", [inp])),
                  (2, "obj", mc.Vec("i32", [out])), (3, "obj", mc.Vec("obj", ops)))
    oc = [mc.Table((0, "i8", c), (2, "i32", 1), (3, "i32", c)) for c in codes]
    root = mc.Table((0, "u32", 3), (1, "obj", mc.Vec("obj", oc)), (2, "obj", mc.Vec("obj", [sg])),
                    (4, "obj", mc.Vec("obj", buffers)))
    return flatbuffer(root)


def tensor(shape, buf=0, ttype=mc.FLOAT32, quant=None):
    q = None
    if quant is not None:
        q = mc.Table((2, "obj", mc.Vec("f32", [quant[0]])), (3, "obj", mc.Vec("i64", [quant[1]])))
    return mc.Table((0, "obj", mc.Vec("i32", shape)), (1, "i8", ttype), (2, "u32", buf), (3, "obj", mc.Str("t")),
                    (4, "obj", q))


def conv_op(ins, out):
    return mc.Table((0, "u32", 0), (1, "obj", mc.Vec("i32", ins)), (2, "obj", mc.Vec("i32", [out])),
                    (4, "obj", mc.conv_opts(mc.SAME, 1, mc.NONE)))


def many_tensors(n=1_000_000):
    """n tensor offsets naming one table: 4 bytes each in the file, ~150 in a naive reader."""
    t = Shared(tensor([1, 4, 4, 1]))
    return model([t] * n, [], [], [mc.Table()], 0, n + 5)


def shared_weights(ops=2000, c=128):
    """A 4 -> c convolution, then ops chained 1x1 c -> c convolutions all reading one
    64 KB filter: a ~420 KB file whose network would hold ops x 64 KB of float
    parameters (and as much again in gradients)."""
    tensors = [tensor([1, 1, 1, 4]), tensor([c, 1, 1, c], buf=1), tensor([c, 1, 1, 4], buf=2), tensor([1, 1, 1, c])]
    opl = [conv_op([0, 2, -1], 3)]
    for _ in range(ops):
        tensors.append(tensor([1, 1, 1, c]))
        opl.append(conv_op([len(tensors) - 2, 1, -1], len(tensors) - 1))
    buffers = [mc.Table(), mc.Table((0, "obj", Raw(bytes(4 * c * c)))), mc.Table((0, "obj", Raw(bytes(4 * c * 4))))]
    return model(tensors, opl, [mc.CONV], buffers, 0, len(tensors) - 1)


def big_weights_bad_bias(units=1024, inputs=64 * 64 * 4):
    """A 16 MB uint8 fully connected layer whose bias has the wrong length: refused,
    and before the 64 MB of float weights (plus gradients) exist."""
    tensors = [tensor([1, 64, 64, 4], ttype=mc.UINT8, quant=(0.02, 128)),
               tensor([units, inputs], buf=1, ttype=mc.UINT8, quant=(0.01, 128)),
               tensor([units - 1], buf=2, ttype=mc.INT32, quant=(0.0002, 0)),
               tensor([1, units], ttype=mc.UINT8, quant=(0.1, 128))]
    op = mc.Table((0, "u32", 0), (1, "obj", mc.Vec("i32", [0, 1, 2])), (2, "obj", mc.Vec("i32", [3])),
                  (4, "obj", mc.Table((0, "i8", mc.NONE))))
    buffers = [mc.Table(), mc.Table((0, "obj", Raw(bytes(units * inputs)))),
               mc.Table((0, "obj", Raw(bytes(4 * (units - 1)))))]
    return model(tensors, [op], [mc.FC], buffers, 0, 3)


def huge_filter_shape():
    """A conv filter declaring 2^24 x 64 x 64 x 3 floats over a 16-byte buffer."""
    tensors = [tensor([1, 8, 8, 3]), tensor([1 << 24, 64, 64, 3], buf=1), tensor([1, 8, 8, 1 << 24])]
    buffers = [mc.Table(), mc.Table((0, "obj", Raw(bytes(16))))]
    return model(tensors, [conv_op([0, 1, -1], 2)], [mc.CONV], buffers, 0, 2)


def shape_overflow():
    """A filter whose 4 dimensions of 2^24 multiply past 2^64."""
    tensors = [tensor([1, 8, 8, 3]), tensor([1 << 24] * 4, buf=1), tensor([1, 8, 8, 4])]
    buffers = [mc.Table(), mc.Table((0, "obj", Raw(bytes(16))))]
    return model(tensors, [conv_op([0, 1, -1], 2)], [mc.CONV], buffers, 0, 2)


def offset_past_end():
    """A valid seed whose root offset points 2 GB past the end."""
    b = bytearray(mc.float_net())
    struct.pack_into("<I", b, 0, 0x7FFFFFF0)
    return bytes(b)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    files = {"many_tensors": many_tensors(), "shared_weights": shared_weights(),
             "big_weights_bad_bias": big_weights_bad_bias(), "huge_filter_shape": huge_filter_shape(),
             "shape_overflow": shape_overflow(), "offset_past_end": offset_past_end()}
    for name, b in files.items():
        with open(os.path.join(out, name + ".tflite"), "wb") as f:
            f.write(b)
    with open(os.path.join(out, "labels_newlines.txt"), "wb") as f:
        f.write(b"\n" * (16 << 20))


if __name__ == "__main__":
    main()
