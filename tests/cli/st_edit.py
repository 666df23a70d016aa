#!/usr/bin/env python3
"""Rewrites a safetensors file for the CLI tests: st_edit.py SRC DST OP...
OPs: only:PREFIX (keep those), without:PREFIX (drop those), drop:NAME, rename:OLD=NEW (key prefix),
reshape:NAME:D0,D1,... (zeros of that shape, same dtype; a new F32 tensor if absent), resize:NAME:D0,D1,... (numpy.resize:
the values in order, repeated or cut to fill the new shape), inchannels:N (widen the UNet's conv_in to N input channels,
the new ones zero: an inpainting or InstructPix2Pix layout), meta:KEY=VALUE (set a metadata entry).  Also a module:
read(), edit(), write()."""
import json, struct, sys

SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U32": 4, "U8": 1}
CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def read(src):
    """{name: (dtype, shape, bytes)} and the __metadata__ (or None)."""
    raw = open(src, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in header.items()}, meta


def edit(data, ops, meta=None):
    """data after the ops; meta:KEY=VALUE sets the entry in the dict meta."""
    for op in ops:
        kind, _, arg = op.partition(":")
        if kind == "only":
            data = {k: v for k, v in data.items() if k.startswith(arg)}
        elif kind == "without":
            data = {k: v for k, v in data.items() if not k.startswith(arg)}
        elif kind == "drop":
            del data[arg]
        elif kind == "rename":
            old, new = arg.split("=")
            data = {(new + k[len(old):] if k.startswith(old) else k): v for k, v in data.items()}
        elif kind == "reshape":
            name, dims = arg.rsplit(":", 1)
            dtype = data[name][0] if name in data else "F32"
            shape = [int(d) for d in dims.split(",")]
            data[name] = (dtype, shape, bytes(numel(shape) * SIZE[dtype]))
        elif kind == "resize":
            name, dims = arg.rsplit(":", 1)
            dtype, _, b = data[name]
            shape = [int(d) for d in dims.split(",")]
            want = numel(shape) * SIZE[dtype]
            data[name] = (dtype, shape, (b * (want // len(b) + 1))[:want])
        elif kind == "inchannels":
            dtype, shape, b = data[CONV_IN]
            per_out, new_in = numel(shape[1:]) * SIZE[dtype], int(arg)
            extra = bytes((new_in - shape[1]) * shape[2] * shape[3] * SIZE[dtype])
            b = b"".join(b[o * per_out:(o + 1) * per_out] + extra for o in range(shape[0]))
            data[CONV_IN] = (dtype, [shape[0], new_in] + shape[2:], b)
        elif kind == "meta":
            key, value = arg.split("=", 1)
            meta[key] = value
        else:
            sys.exit("unknown op " + op)
    return data


def write(data, meta, dst):
    out, body, at = {}, [], 0
    for k in sorted(data):
        dtype, shape, b = data[k]
        out[k] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + len(b)]}
        body.append(b)
        at += len(b)
    if meta is not None:
        out["__metadata__"] = meta
    h = json.dumps(out, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(body))


if __name__ == "__main__":
    tensors, metadata = read(sys.argv[1])
    metadata = metadata or {}
    write(edit(tensors, sys.argv[3:], metadata), metadata or None, sys.argv[2])
