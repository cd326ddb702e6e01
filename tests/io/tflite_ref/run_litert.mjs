#!/usr/bin/env node
// Run a .tflite model with LiteRT.js (npm @litertjs/core, WebAssembly, XNNPACK CPU
// delegate) under Node -- same file interface as run_tflite.py:
//
//   node run_litert.mjs --pkg CORE_DIR MODEL.tflite IN.raw OUT.raw [IN2 OUT2 ...]
//   node run_litert.mjs --pkg CORE_DIR --batch PAIRS.txt MODEL.tflite
//
// CORE_DIR is .../node_modules/@litertjs/core as printed by fetch_litert.sh (or
// $LITERT_CORE).  IN.raw = exact bytes of input tensor 0, OUT.raw = exact bytes of
// output tensor 0.  -v prints tensor details and LiteRT's log to stderr.
// --dump-tensors DIR: as in run_tflite.py, every operator output becomes a graph output
// (model rewritten in memory) and is written to DIR/tNNN.raw (DIR/KKK/ for several
// pairs) with DIR/tensors.tsv; NNN is the tensor index, so files pair up with
// run_tflite.py's.  (Graph inputs are not exposed: LiteRT then feeds zeros.)
//
// LiteRT.js is written for browsers; the shims below let its Emscripten loader run
// under Node: `self` = globalThis, `importScripts` evaluates the glue script with
// CommonJS `require`/`__dirname`, and the WebGPU probe (no `navigator` in Node) is
// skipped by passing an environment without a WebGPU device.
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import {createRequire} from 'node:module';
import {pathToFileURL} from 'node:url';

function die(msg) {
  process.stderr.write(`run_litert.mjs: ${msg}\n`);
  process.exit(1);
}

const args = process.argv.slice(2);
let pkg = process.env.LITERT_CORE || '', batch = null, verbose = false, dumpDir = null;
const pos = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--pkg') pkg = args[++i];
  else if (a === '--batch') batch = args[++i];
  else if (a === '-v') verbose = true;
  else if (a === '--dump-tensors') dumpDir = args[++i];
  else if (a.startsWith('-') && a !== '-') die(`unknown option ${a}`);
  else pos.push(a);
}
if (!pkg) die('no LiteRT.js package: give --pkg DIR or set LITERT_CORE (see fetch_litert.sh)');
if (pos.length < 1) die('usage: run_litert.mjs --pkg DIR MODEL.tflite IN OUT [IN OUT ...]');
const modelPath = pos[0];
const files = pos.slice(1);
if (files.length % 2) die('input/output files must come in pairs');
const pairs = [];
for (let i = 0; i < files.length; i += 2) pairs.push([files[i], files[i + 1]]);
if (batch) {
  let text;
  try {
    text = fs.readFileSync(batch === '-' ? 0 : batch, 'utf8');
  } catch (e) {
    die(`cannot read ${batch}: ${e.message}`);
  }
  text.split('\n').forEach((line, n) => {
    const w = line.trim().split(/\s+/).filter(Boolean);
    if (!w.length || w[0].startsWith('#')) return;
    if (w.length !== 2) die(`${batch}:${n + 1}: expected 'IN OUT'`);
    pairs.push(w);
  });
}
if (!pairs.length) die('nothing to do: give IN.raw OUT.raw pairs or --batch');

const index = path.join(pkg, 'dist', 'index.js');
if (!fs.existsSync(index)) die(`${index} not found (run fetch_litert.sh)`);

// LiteRT's C++ side logs INFO lines through console; keep them only with -v.
const realLog = console.log, realWarn = console.warn, realErr = console.error;
if (!verbose) {
  console.log = console.warn = () => {};
  console.error = (...m) => {
    const s = m.join(' ');
    if (/^(INFO|WARNING): /.test(s)) return;
    realErr(...m);
  };
}
globalThis.self = globalThis;
const req = createRequire(index);
globalThis.importScripts = (u) => {
  const file = String(u).startsWith('file:') ? new URL(String(u)).pathname : String(u);
  const src = '(function (require, __dirname, __filename) {' + fs.readFileSync(file, 'utf8') +
      '\n;globalThis.ModuleFactory = ModuleFactory; })';
  vm.runInThisContext(src, {filename: file})(req, path.dirname(file), file);
};

let lrt;
try {
  lrt = await import(pathToFileURL(index).href);
} catch (e) {
  die(`cannot import ${index}: ${e.message}`);
}
const {loadLiteRt, loadAndCompile, Tensor, Environment} = lrt;
// Minimal FlatBuffer patch (same as run_tflite.py expose_all_tensors): subgraph 0's
// outputs := original outputs + every operator output, as a vector appended at the end.
function exposeAllTensors(bytes) {
  const b = Buffer.from(bytes), u32 = (p) => b.readUInt32LE(p);
  if (b.toString('latin1', 4, 8) !== 'TFL3') die('not a TFLite model (no TFL3 identifier)');
  const field = (t, i) => {
    const vt = t - b.readInt32LE(t), vsize = b.readUInt16LE(vt);
    if (4 + 2 * i >= vsize) return null;
    const off = b.readUInt16LE(vt + 4 + 2 * i);
    return off ? t + off : null;
  };
  const vec = (t, i) => {
    const f = field(t, i);
    if (f === null) return [0, 0];
    const v = f + u32(f);
    return [v + 4, u32(v)];
  };
  const ints = (t, i) => {
    const [p, n] = vec(t, i);
    return Array.from({length: n}, (_, k) => b.readInt32LE(p + 4 * k));
  };
  const [sgp, nsg] = vec(u32(0), 2);
  if (nsg < 1) die('model has no subgraph');
  const sg = sgp + u32(sgp);
  const want = ints(sg, 2);
  const [opp, nop] = vec(sg, 3);
  for (let k = 0; k < nop; k++) {
    const op = opp + 4 * k + u32(opp + 4 * k);
    for (const t of ints(op, 2)) if (t >= 0 && !want.includes(t)) want.push(t);
  }
  const slot = field(sg, 2);
  if (slot === null) die('subgraph has no outputs field');
  const base = b.length + (-b.length & 3);
  const out = Buffer.alloc(base + 4 + 4 * want.length);
  b.copy(out);
  out.writeUInt32LE(want.length, base);
  want.forEach((t, k) => out.writeInt32LE(t, base + 4 + 4 * k));
  out.writeUInt32LE(base - slot, slot);
  return [new Uint8Array(out.buffer, out.byteOffset, out.length), want];
}

let modelBytes = new Uint8Array(fs.readFileSync(modelPath)), outIds = null;
if (dumpDir) [modelBytes, outIds] = exposeAllTensors(modelBytes);
let model;
try {
  await loadLiteRt(path.join(pkg, 'wasm') + '/');
  const environment = await Environment.create({webGpuDevice: null});
  model = await loadAndCompile(modelBytes,
                               {accelerator: 'wasm', environment, cpuOptions: {numThreads: 1}});
} catch (e) {
  die(`cannot load/compile ${modelPath}: ${e.message || e}`);
}
const inDet = model.getInputDetails(), outDet = model.getOutputDetails();
if (inDet.length !== 1) die(`model has ${inDet.length} inputs; only single-input models are supported`);
const shape = Array.from(Object.values(inDet[0].shape));
const TA = {float32: Float32Array, int32: Int32Array, uint8: Uint8Array}[inDet[0].dtype];
if (!TA) die(`unsupported input dtype ${inDet[0].dtype}`);
const nin = shape.reduce((a, b) => a * b, 1) * TA.BYTES_PER_ELEMENT;
if (verbose) {
  realErr(`LiteRT.js ${JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'))).version}` +
          ` (wasm, XNNPACK)\n  input  ${JSON.stringify(inDet[0])}\n  output ${JSON.stringify(outDet[0])}`);
}

for (const [k, [fin, fout]] of pairs.entries()) {
  let data;
  try {
    data = fs.readFileSync(fin);
  } catch (e) {
    die(`cannot read input: ${e.message}`);
  }
  if (data.length !== nin) die(`${fin} has ${data.length} bytes, input tensor [${shape}] needs ${nin}`);
  const buf = new ArrayBuffer(nin);
  new Uint8Array(buf).set(data);
  const input = new Tensor(new TA(buf), shape);
  let outs;
  try {
    outs = await model.run(input);
  } catch (e) {
    die(`run failed on ${fin}: ${e.message || e}`);
  }
  const bytesOf = (t) => {
    const a = t.toTypedArray();
    return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  };
  try {
    fs.writeFileSync(fout, bytesOf(outs[0]));
    if (dumpDir) {
      // outputs come back in the order of getOutputDetails(); map names to indices
      const d = pairs.length === 1 ? dumpDir : path.join(dumpDir, String(k).padStart(3, '0'));
      fs.mkdirSync(d, {recursive: true});
      const rows = ['index\tname\ttype\tshape\tbytes\tfile'];
      outDet.forEach((det, i) => {
        const name = `t${String(outIds[det.index] ?? 900 + i).padStart(3, '0')}.raw`;
        const data = bytesOf(outs[i]);
        fs.writeFileSync(path.join(d, name), data);
        rows.push([outIds[det.index], det.name, det.dtype,
                   Array.from(Object.values(det.shape)).join('x'), data.length, name].join('\t'));
      });
      fs.writeFileSync(path.join(d, 'tensors.tsv'), rows.join('\n') + '\n');
    }
  } catch (e) {
    die(`cannot write output: ${e.message}`);
  }
  input.delete();
  for (const t of outs) t.delete();
}
model.delete();
console.log = realLog;
console.warn = realWarn;
process.exit(0);
