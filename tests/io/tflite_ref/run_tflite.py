#!/usr/bin/python3
"""Run a .tflite model with TensorFlow Lite's own C library (ctypes, TFLite C API).

    run_tflite.py --lib libtensorflowlite_c.so MODEL.tflite IN.raw OUT.raw [IN2 OUT2 ...]
    run_tflite.py --lib ... --batch PAIRS.txt MODEL.tflite      (lines "IN OUT"; "-" = stdin)

IN.raw must be exactly the bytes of input tensor 0 (e.g. uint8 NHWC 1xHxWx3);
OUT.raw receives exactly the bytes of output tensor 0.  One interpreter serves every pair.

Options:
  --xnnpack        apply the XNNPACK delegate with the QS8|QU8 flags (quantised ops on
                   XNNPACK); without it the quantised ops run on the built-in kernels.
  --threads N      interpreter / delegate threads (default 1).
  --dump-tensors D also write every operator output tensor (= every activation) to
                   D/tNNN.raw (D/KKK/tNNN.raw with several pairs) plus D/tensors.tsv.
                   Done by rewriting the model so that those tensors are graph outputs
                   (TFLite's arena reuses intermediate buffers; the C API has no
                   preserve_all_tensors), which does not change any kernel's arithmetic.
  -v               print tensor info to stderr.
The library path may also come from $TFLITE_C_LIB.
"""
import argparse
import ctypes as C
import os
import struct
import sys

# TfLiteXNNPackDelegateOptions as compiled into the 2.9.0 library shipped by
# tfjs-tflite-node: TfLiteXNNPackDelegateOptionsDefault() returns 8 bytes (xor eax,eax; ret)
# and TfLiteXNNPackDelegateCreate copies 8 bytes: {int32 num_threads; uint32 flags}.
XNN_FLAG_QS8, XNN_FLAG_QU8 = 1, 2


class XnnOptions(C.Structure):
    _fields_ = [("num_threads", C.c_int32), ("flags", C.c_uint32)]


class QuantParams(C.Structure):
    _fields_ = [("scale", C.c_float), ("zero_point", C.c_int32)]


def die(msg):
    sys.stderr.write("run_tflite.py: %s\n" % msg)
    sys.exit(1)


def load_lib(path):
    try:
        L = C.CDLL(path)
    except OSError as e:
        die("cannot load %s: %s" % (path, e))
    P, I, S = C.c_void_p, C.c_int32, C.c_size_t
    sigs = {
        "TfLiteVersion": (C.c_char_p, []),
        "TfLiteModelCreate": (P, [P, S]),
        "TfLiteModelDelete": (None, [P]),
        "TfLiteInterpreterOptionsCreate": (P, []),
        "TfLiteInterpreterOptionsDelete": (None, [P]),
        "TfLiteInterpreterOptionsSetNumThreads": (None, [P, I]),
        "TfLiteInterpreterOptionsAddDelegate": (None, [P, P]),
        "TfLiteInterpreterCreate": (P, [P, P]),
        "TfLiteInterpreterDelete": (None, [P]),
        "TfLiteInterpreterAllocateTensors": (I, [P]),
        "TfLiteInterpreterGetInputTensorCount": (I, [P]),
        "TfLiteInterpreterGetInputTensor": (P, [P, I]),
        "TfLiteInterpreterGetOutputTensorCount": (I, [P]),
        "TfLiteInterpreterGetOutputTensor": (P, [P, I]),
        "TfLiteInterpreterInvoke": (I, [P]),
        "TfLiteTensorType": (I, [P]),
        "TfLiteTypeGetName": (C.c_char_p, [I]),
        "TfLiteTensorNumDims": (I, [P]),
        "TfLiteTensorDim": (I, [P, I]),
        "TfLiteTensorByteSize": (S, [P]),
        "TfLiteTensorName": (C.c_char_p, [P]),
        "TfLiteTensorQuantizationParams": (QuantParams, [P]),
        "TfLiteTensorCopyFromBuffer": (I, [P, P, S]),
        "TfLiteTensorCopyToBuffer": (I, [P, P, S]),
    }
    for name, (res, args) in sigs.items():
        try:
            f = getattr(L, name)
        except AttributeError:
            die("%s does not export %s" % (path, name))
        f.restype, f.argtypes = res, args
    return L


# --- minimal FlatBuffer access to the TFLite schema (only what --dump-tensors needs) ---
def _u32(b, p):
    return struct.unpack_from("<I", b, p)[0]


def _field(b, t, i):
    """absolute position of field i of the table at t, or None if absent"""
    vt = t - struct.unpack_from("<i", b, t)[0]
    vsize = struct.unpack_from("<H", b, vt)[0]
    if 4 + 2 * i >= vsize:
        return None
    off = struct.unpack_from("<H", b, vt + 4 + 2 * i)[0]
    return t + off if off else None


def _vec(b, t, i):
    """(position of first element, length) of vector field i of table t"""
    f = _field(b, t, i)
    if f is None:
        return None, 0
    v = f + _u32(b, f)
    return v + 4, _u32(b, v)


def _ints(b, t, i):
    p, n = _vec(b, t, i)
    return list(struct.unpack_from("<%di" % n, b, p)) if n else []


def expose_all_tensors(model):
    """Return (new model bytes, output tensor indices): subgraph 0's outputs become its
    original outputs + every operator output.  The new outputs vector is
    appended at the end of the buffer (uoffsets point forward, so this stays valid)."""
    b = bytearray(model)
    if b[4:8] != b"TFL3":
        die("not a TFLite model (no TFL3 identifier)")
    root = _u32(b, 0)
    sgp, nsg = _vec(b, root, 2)           # Model.subgraphs
    if nsg < 1:
        die("model has no subgraph")
    sg = sgp + _u32(b, sgp)
    outs = _ints(b, sg, 2)                 # SubGraph.outputs
    want = list(outs)
    opp, nop = _vec(b, sg, 3)              # SubGraph.operators
    for k in range(nop):
        op = opp + 4 * k + _u32(b, opp + 4 * k)
        for t in _ints(b, op, 2):          # Operator.outputs
            if t >= 0 and t not in want:
                want.append(t)
    slot = _field(b, sg, 2)
    if slot is None:
        die("subgraph has no outputs field")
    b += b"\0" * (-len(b) % 4)
    newvec = len(b)
    b += struct.pack("<I%di" % len(want), len(want), *want)
    struct.pack_into("<I", b, slot, newvec - slot)
    return bytes(b), want


def tensor_info(L, t):
    shape = [L.TfLiteTensorDim(t, d) for d in range(L.TfLiteTensorNumDims(t))]
    q = L.TfLiteTensorQuantizationParams(t)
    return {
        "name": (L.TfLiteTensorName(t) or b"").decode("utf-8", "replace"),
        "type": L.TfLiteTypeGetName(L.TfLiteTensorType(t)).decode(),
        "shape": shape,
        "scale": q.scale,
        "zero_point": q.zero_point,
        "bytes": L.TfLiteTensorByteSize(t),
    }


def read_tensor(L, t):
    n = L.TfLiteTensorByteSize(t)
    buf = C.create_string_buffer(n)
    if L.TfLiteTensorCopyToBuffer(t, buf, n) != 0:
        die("TfLiteTensorCopyToBuffer failed")
    return buf.raw


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lib", default=os.environ.get("TFLITE_C_LIB"))
    ap.add_argument("--xnnpack", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", metavar="PAIRS")
    ap.add_argument("--dump-tensors", metavar="DIR")
    ap.add_argument("-v", action="store_true")
    ap.add_argument("model")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    if not a.lib:
        die("no library: give --lib PATH or set TFLITE_C_LIB (see fetch.sh)")
    pairs = list(zip(a.files[0::2], a.files[1::2]))
    if len(a.files) % 2:
        die("input/output files must come in pairs")
    if a.batch:
        try:
            f = sys.stdin if a.batch == "-" else open(a.batch)
            for ln, line in enumerate(f, 1):
                w = line.split()
                if not w or w[0].startswith("#"):
                    continue
                if len(w) != 2:
                    die("%s:%d: expected 'IN OUT'" % (a.batch, ln))
                pairs.append((w[0], w[1]))
        except OSError as e:
            die("cannot read %s: %s" % (a.batch, e))
    if not pairs:
        die("nothing to do: give IN.raw OUT.raw pairs or --batch")

    L = load_lib(a.lib)
    try:
        with open(a.model, "rb") as f:
            model_bytes = f.read()
    except OSError as e:
        die("cannot read model: %s" % e)
    out_ids = None
    if a.dump_tensors:
        model_bytes, out_ids = expose_all_tensors(model_bytes)
    mbuf = C.create_string_buffer(model_bytes, len(model_bytes))  # must outlive the model
    model = L.TfLiteModelCreate(mbuf, len(model_bytes))
    if not model:
        die("TfLiteModelCreate failed for %s" % a.model)
    opts = L.TfLiteInterpreterOptionsCreate()
    L.TfLiteInterpreterOptionsSetNumThreads(opts, a.threads)
    delegate = None
    if a.xnnpack:
        for s in ("TfLiteXNNPackDelegateCreate", "TfLiteXNNPackDelegateDelete"):
            if not hasattr(L, s):
                die("%s does not export %s" % (a.lib, s))
        L.TfLiteXNNPackDelegateCreate.restype = C.c_void_p
        L.TfLiteXNNPackDelegateCreate.argtypes = [C.POINTER(XnnOptions)]
        L.TfLiteXNNPackDelegateDelete.argtypes = [C.c_void_p]
        xo = XnnOptions(a.threads if a.threads > 1 else 0, XNN_FLAG_QS8 | XNN_FLAG_QU8)
        delegate = L.TfLiteXNNPackDelegateCreate(C.byref(xo))
        if not delegate:
            die("TfLiteXNNPackDelegateCreate failed")
        L.TfLiteInterpreterOptionsAddDelegate(opts, delegate)
    interp = L.TfLiteInterpreterCreate(model, opts)
    if not interp:
        die("TfLiteInterpreterCreate failed (see TFLite's message above)")
    if L.TfLiteInterpreterAllocateTensors(interp) != 0:
        die("TfLiteInterpreterAllocateTensors failed")
    if L.TfLiteInterpreterGetInputTensorCount(interp) != 1:
        die("model has %d inputs; only single-input models are supported"
            % L.TfLiteInterpreterGetInputTensorCount(interp))
    tin = L.TfLiteInterpreterGetInputTensor(interp, 0)
    tout = L.TfLiteInterpreterGetOutputTensor(interp, 0)
    nin = L.TfLiteTensorByteSize(tin)
    nout = L.TfLiteInterpreterGetOutputTensorCount(interp)
    if a.v:
        sys.stderr.write("TFLite %s%s\n  input  %s\n  output %s\n" % (
            L.TfLiteVersion().decode(), " + XNNPACK(QS8|QU8)" if a.xnnpack else "",
            tensor_info(L, tin), tensor_info(L, tout)))

    for k, (fin, fout) in enumerate(pairs):
        try:
            with open(fin, "rb") as f:
                data = f.read()
        except OSError as e:
            die("cannot read input: %s" % e)
        if len(data) != nin:
            die("%s has %d bytes, input tensor %s needs %d"
                % (fin, len(data), tensor_info(L, tin)["shape"], nin))
        if L.TfLiteTensorCopyFromBuffer(tin, data, nin) != 0:
            die("TfLiteTensorCopyFromBuffer failed")
        if L.TfLiteInterpreterInvoke(interp) != 0:
            die("TfLiteInterpreterInvoke failed on %s" % fin)
        try:
            with open(fout, "wb") as f:
                f.write(read_tensor(L, tout))
            if a.dump_tensors:
                d = a.dump_tensors if len(pairs) == 1 else os.path.join(
                    a.dump_tensors, "%03d" % k)
                os.makedirs(d, exist_ok=True)
                rows = ["index\tname\ttype\tshape\tscale\tzero_point\tbytes\tfile"]
                for i in range(nout):
                    t = L.TfLiteInterpreterGetOutputTensor(interp, i)
                    name = "t%03d.raw" % out_ids[i]
                    with open(os.path.join(d, name), "wb") as f:
                        f.write(read_tensor(L, t))
                    inf = tensor_info(L, t)
                    rows.append("%d\t%s\t%s\t%s\t%.9g\t%d\t%d\t%s" % (
                        out_ids[i], inf["name"], inf["type"],
                        "x".join(map(str, inf["shape"])), inf["scale"],
                        inf["zero_point"], inf["bytes"], name))
                with open(os.path.join(d, "tensors.tsv"), "w") as f:
                    f.write("\n".join(rows) + "\n")
        except OSError as e:
            die("cannot write output: %s" % e)

    L.TfLiteInterpreterDelete(interp)
    if delegate:
        L.TfLiteXNNPackDelegateDelete(delegate)
    L.TfLiteInterpreterOptionsDelete(opts)
    L.TfLiteModelDelete(model)


if __name__ == "__main__":
    main()
