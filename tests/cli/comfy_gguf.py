#!/usr/bin/env python3
"""Writes a GGUF the way ComfyUI-GGUF's convert script lays out a UNet-only file, with no
dependencies (a reference independent of tessera's own writer):

  comfy_gguf.py IN.safetensors OUT.gguf PREFIX

Only the tensors under PREFIX are kept, with PREFIX removed (bare names).  1-D tensors and
those under 1024 elements stay F32; a tensor whose rows (last dim) are not a multiple of 32
but whose element count is a multiple of 256 (3x3 and 1x1 conv kernels) is flattened to rows
of 256 and its shape recorded under "comfy.gguf.orig_shape.NAME"; every other tensor is
quantised to Q8_0 as ggml does (d = amax / 127, q = round(x / d)).  Prints what it wrote."""
import json, struct, sys

src, out, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
raw = open(src, 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
header = json.loads(raw[8:8 + n])
base = 8 + n


def s(text):
    b = text.encode()
    return struct.pack('<Q', len(b)) + b


def q8_0(values):
    blocks = []
    for i in range(0, len(values), 32):
        x = values[i:i + 32]
        amax = max(abs(v) for v in x)
        d = amax / 127.0
        inv = 1.0 / d if d else 0.0
        # ggml rounds half away from zero (roundf)
        q = [int(v * inv + (0.5 if v * inv >= 0 else -0.5)) for v in x]
        blocks.append(struct.pack('<e32b', d, *q))
    return b''.join(blocks)


tensors, kvs, counts = [], [s('general.architecture') + struct.pack('<I', 8) + s('sd1')], {}
for name, t in sorted(header.items()):
    if name == '__metadata__' or not name.startswith(prefix):
        continue
    assert t['dtype'] == 'F32', name
    shape = t['shape']
    begin, end = t['data_offsets']
    values = list(struct.unpack('<%df' % ((end - begin) // 4), raw[base + begin:base + end]))
    numel = len(values)
    bare = name[len(prefix):]
    if len(shape) < 2 or numel < 1024 or (shape[-1] % 32 and numel % 256):
        kind, data, ne = 0, struct.pack('<%df' % numel, *values), shape[::-1]
    elif shape[-1] % 32:
        kvs.append(s('comfy.gguf.orig_shape.' + bare) + struct.pack('<IIQ', 9, 5, len(shape)) +
                   struct.pack('<%di' % len(shape), *shape))
        kind, data, ne = 8, q8_0(values), [256, numel // 256]
        counts['flattened'] = counts.get('flattened', 0) + 1
    else:
        kind, data, ne = 8, q8_0(values), shape[::-1]
    counts[kind] = counts.get(kind, 0) + 1
    tensors.append((bare, ne, kind, data))

head = b'GGUF' + struct.pack('<IQQ', 3, len(tensors), len(kvs)) + b''.join(kvs)
infos, offset, blob = b'', 0, b''
for bare, ne, kind, data in tensors:
    infos += s(bare) + struct.pack('<I', len(ne)) + struct.pack('<%dQ' % len(ne), *ne) + struct.pack('<IQ', kind, offset)
    pad = -len(data) % 32
    blob += data + b'\0' * pad
    offset += len(data) + pad
meta = head + infos
meta += b'\0' * (-len(meta) % 32)
with open(out + '.tmp', 'wb') as f:
    f.write(meta + blob)
import os
os.replace(out + '.tmp', out)
print('%s: %d tensors (%d F32, %d Q8_0 of which %d flattened to rows of 256)' %
      (out, len(tensors), counts.get(0, 0), counts.get(8, 0), counts.get('flattened', 0)))
