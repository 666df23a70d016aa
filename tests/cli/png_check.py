#!/usr/bin/env python3
"""PNG checks for the CLI tests (8-bit PNGs, no dependencies):
  png_check.py keep OUT IN MASK R   OUT equals IN byte for byte wherever MASK has no white pixel within R
                                    pixels, and differs somewhere inside the mask
  png_check.py text FILE            prints the "parameters" text
  png_check.py size FILE            prints WxH
  png_check.py same A B             A and B hold the same pixels (metadata may differ)
  png_check.py close A B MEAN       A and B are the same size, differ somewhere, and their mean absolute
                                    channel difference is at most MEAN (prints it)
  png_check.py make image|mask FILE W H   writes a test picture (gradient) or mask (white middle third)"""
import struct, sys, zlib
def png(path, w, h, ch, fn):
    raw = b''.join(b'\0' + bytes(v for x in range(w) for v in fn(x, y)) for y in range(h))
    def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
    ct = {1: 0, 3: 2}[ch]
    open(path, 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, ct, 0, 0, 0))
                           + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))


def read(path):
    d = open(path, 'rb').read(); assert d[:8] == b'\x89PNG\r\n\x1a\n'
    i, idat, text = 8, b'', {}
    while i < len(d):
        n, t = struct.unpack('>I4s', d[i:i + 8]); body = d[i + 8:i + 8 + n]; i += 12 + n
        if t == b'IHDR': w, h, depth, ct = struct.unpack('>IIBB', body[:10])
        elif t == b'IDAT': idat += body
        elif t == b'tEXt': k, v = body.split(b'\0', 1); text[k.decode()] = v.decode('latin-1')
    ch = {0: 1, 2: 3, 4: 2, 6: 4}[ct]; assert depth == 8
    raw, stride, out, prev = zlib.decompress(idat), w * ch, [], bytearray(w * ch)
    for y in range(h):
        f, row = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = row[x - ch] if x >= ch else 0; b = prev[x]; c = prev[x - ch] if x >= ch else 0
            if f == 1: row[x] = (row[x] + a) & 255
            elif f == 2: row[x] = (row[x] + b) & 255
            elif f == 3: row[x] = (row[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[x] = (row[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out.append(bytes(row)); prev = row
    return w, h, ch, out, text
if sys.argv[1] == 'keep':
    w, h, ch, o, _ = read(sys.argv[2]); _, _, _, src, _ = read(sys.argv[3]); _, _, _, m, _ = read(sys.argv[4])
    r = int(sys.argv[5]); kept = changed = 0
    for y in range(h):
        for x in range(w):
            near = any(m[yy][xx] for yy in range(max(0, y - r), min(h, y + r + 1)) for xx in range(max(0, x - r), min(w, x + r + 1)))
            px, sx = o[y][3 * x:3 * x + 3], src[y][3 * x:3 * x + 3]
            if not near:
                if px != sx: print('pixel %d,%d changed outside the mask' % (x, y)); sys.exit(1)
                kept += 1
            elif m[y][x] and px != sx: changed += 1
    print('kept %d, changed %d' % (kept, changed)); sys.exit(0 if kept and changed else 1)
elif sys.argv[1] == 'text':
    print(read(sys.argv[2])[4].get('parameters', ''))
elif sys.argv[1] == 'size':
    w, h, ch, _, _ = read(sys.argv[2]); print('%dx%d' % (w, h))
elif sys.argv[1] == 'same':
    sys.exit(0 if read(sys.argv[2])[:4] == read(sys.argv[3])[:4] else 1)
elif sys.argv[1] == 'close':
    a, b = read(sys.argv[2]), read(sys.argv[3])
    if a[:3] != b[:3]: print('sizes differ'); sys.exit(1)
    diff = [abs(x - y) for ra, rb in zip(a[3], b[3]) for x, y in zip(ra, rb)]
    mean = sum(diff) / len(diff); print('mean abs difference %.3f, max %d' % (mean, max(diff)))
    sys.exit(0 if 0 < mean <= float(sys.argv[4]) else 1)
elif sys.argv[1] == 'make':
    kind, path, w, h = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    if kind == 'image':
        png(path, w, h, 3, lambda x, y: ((x * 255) // w, (y * 255) // h, (x * y) % 256))
    else:
        png(path, w, h, 1, lambda x, y: (255 if w // 3 <= x < 2 * w // 3 and h // 3 <= y < 2 * h // 3 else 0,))
