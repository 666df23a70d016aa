// The TF.js peer of `tessera upscale`: runs an UpscalerJS model.json under node with
// TF.js's own backends (the pure-JS "cpu" one and, when it loads, "wasm") on the same
// PNG Tessera gets, and prints one JSON line per backend with the seconds of the
// best of N runs.  Used by bench/upscale.sh; not part of the engine.
//
// usage: TFJS_DIR=<npm prefix holding @tensorflow/tfjs> node bench/tfjs_upscale.mjs
//          MODEL_JSON IN.png BACKENDS(cpu,wasm) RUNS [OUT.raw]
//        node bench/tfjs_upscale.mjs --make-input SRC.png OUT.png W H
//          (a W x H RGB PNG: SRC mirrored across its edges as often as needed)
//
// The models are used exactly as UpscalerJS defines them: RDN takes pixels in 0..255,
// RRDN in 0..1, and RRDN graphs need the two custom layers it registers (MultiplyBeta:
// x * 0.2; PixelShuffle<s>x: depth_to_space in NHWC).
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';

const [modelJson, inPng, backendList, runsArg, rawOut] = process.argv.slice(2);
if (!modelJson || !inPng) {
  console.error('usage: node tfjs_upscale.mjs MODEL_JSON IN.png [cpu,wasm] [runs] [out.raw]');
  process.exit(2);
}

// Minimal PNG reader: 8-bit gray/RGB/RGBA, not interlaced (all the bench feeds it).
function readPng(file) {
  const buf = fs.readFileSync(file);
  let pos = 8, width = 0, height = 0, channels = 0;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos), type = buf.toString('latin1', pos + 4, pos + 8);
    const body = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[body[9]];
      if (body[8] !== 8 || body[12] !== 0 || !channels) throw new Error(`${file}: unsupported PNG layout`);
    } else if (type === 'IDAT') idat.push(body);
    pos += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat)), stride = width * channels;
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)], line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? px[y * stride + x - channels] : 0, b = y ? px[(y - 1) * stride + x] : 0;
      const c = x >= channels && y ? px[(y - 1) * stride + x - channels] : 0;
      let p = 0;
      if (filter === 1) p = a;
      else if (filter === 2) p = b;
      else if (filter === 3) p = (a + b) >> 1;
      else if (filter === 4) {
        const q = a + b - c, pa = Math.abs(q - a), pb = Math.abs(q - b), pc = Math.abs(q - c);
        p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      px[y * stride + x] = (line[x] + p) & 255;
    }
  }
  const rgb = new Float32Array(width * height * 3);
  for (let i = 0; i < width * height; i++)
    for (let k = 0; k < 3; k++) rgb[i * 3 + k] = px[i * channels + (channels < 3 ? 0 : k)];
  return { width, height, rgb };
}

function crc32(bytes) {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function writePng(file, width, height, rgb) {
  const rows = Buffer.alloc(height * (1 + width * 3));
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width * 3; x++) rows[y * (1 + width * 3) + 1 + x] = rgb[y * width * 3 + x];
  const chunk = (type, body) => {
    const head = Buffer.alloc(8), tail = Buffer.alloc(4);
    head.writeUInt32BE(body.length, 0);
    head.write(type, 4, 'latin1');
    tail.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])), 0);
    return Buffer.concat([head, body, tail]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  fs.writeFileSync(file, Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]));
}

if (modelJson === '--make-input') {
  const [, src, out, w, h] = process.argv.slice(2), img = readPng(src), W = Number(w), H = Number(h);
  const mirror = (v, n) => { v %= 2 * n; return v < n ? v : 2 * n - 1 - v; };
  const rgb = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++)
      for (let k = 0; k < 3; k++)
        rgb[(y * W + x) * 3 + k] = img.rgb[(mirror(y, img.height) * img.width + mirror(x, img.width)) * 3 + k];
  writePng(out, W, H, rgb);
  process.exit(0);
}

const require = createRequire(path.resolve(process.env.TFJS_DIR || '.') + '/');
const tf = require('@tensorflow/tfjs');

class MultiplyBeta extends tf.layers.Layer {
  static className = 'MultiplyBeta';
  call(inputs) { return tf.mul(Array.isArray(inputs) ? inputs[0] : inputs, 0.2); }
}
for (const s of [2, 3, 4, 8]) {
  const PixelShuffle = class extends tf.layers.Layer {
    static className = `PixelShuffle${s}x`;
    computeOutputShape(shape) { return [shape[0], shape[1] && shape[1] * s, shape[2] && shape[2] * s, 3]; }
    call(inputs) { return tf.depthToSpace(Array.isArray(inputs) ? inputs[0] : inputs, s, 'NHWC'); }
  };
  tf.serialization.registerClass(PixelShuffle);
}
tf.serialization.registerClass(MultiplyBeta);

async function loadModel() {
  const dir = path.dirname(modelJson), json = JSON.parse(fs.readFileSync(modelJson, 'utf8'));
  const specs = [], parts = [];
  for (const group of json.weightsManifest) {
    specs.push(...group.weights);
    for (const p of group.paths) parts.push(fs.readFileSync(path.join(dir, p)));
  }
  const all = Buffer.concat(parts);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  return tf.loadLayersModel({
    load: async () => ({ modelTopology: json.modelTopology, weightSpecs: specs, weightData, format: json.format }),
  });
}

const img = readPng(inPng);
const rrdn = JSON.stringify(JSON.parse(fs.readFileSync(modelJson, 'utf8')).modelTopology).includes('MultiplyBeta');
const range = rrdn ? 1 : 255;
const runs = Number(runsArg || 1);
for (const backend of (backendList || 'cpu,wasm').split(',')) {
  try {
    if (backend === 'wasm') {
      const wasm = require('@tensorflow/tfjs-backend-wasm');
      wasm.setWasmPaths(path.join(path.resolve(process.env.TFJS_DIR || '.'), 'node_modules/@tensorflow/tfjs-backend-wasm/dist/'));
    }
    if (!(await tf.setBackend(backend))) throw new Error(`backend ${backend} did not initialise`);
    await tf.ready();
    const model = await loadModel();
    const x = tf.tensor4d(img.rgb, [1, img.height, img.width, 3]).mul(range / 255);
    let best = Infinity, out = null;
    for (let r = 0; r < runs; r++) {
      const t0 = process.hrtime.bigint();
      const y = model.predict(x);
      const data = await y.data(); // forces the computation to finish
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
      out = { data, shape: y.shape };
      y.dispose();
    }
    if (rawOut) fs.writeFileSync(`${rawOut}.${backend}`, Buffer.from(out.data.buffer));
    const mpx = (out.shape[1] * out.shape[2]) / 1e6;
    const threads = backend === 'wasm' ? require('@tensorflow/tfjs-backend-wasm').getThreadsCount() : 1;
    console.log(JSON.stringify({ backend, seconds: best, out_megapixels: mpx, s_per_mpx: best / mpx, threads }));
    x.dispose();
    model.dispose();
  } catch (e) {
    console.log(JSON.stringify({ backend, error: String(e.message || e) }));
  }
}
