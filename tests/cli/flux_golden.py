"""Helpers for generate_flux.sh around the pipeline_flux golden case.

tokenizer CASE OUT.json: writes a T5 tokenizer.json that turns the case's prompt into
  the case's synthetic T5 ids (one id per word, 2 + crc32(word) % (vocab - 2), as
  case.json's notes define them), so the CLI's prompt route can be run end to end on
  the tiny T5.  Two words of the prompt share an id; the later one is mapped onto the
  earlier one by the normalizer's charsmap (a one-key darts-clone trie), the way real
  T5 normalization rewrites text before segmentation.
image CASE PNG: prints the largest difference between the PNG and the case's
  out.image as the reference CLI saves it (clamp to [-1, 1], (x + 1) * 127.5, rounded).
"""
import base64
import json
import os
import struct
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from png_maxdiff import read_png  # noqa: E402


def tokenizer(case, out):
    cfg = json.load(open(os.path.join(case, "case.json")))["config"]
    vocab_size = cfg["t5"]["vocab_size"]
    words = cfg["prompt"].lower().split()
    ids = {}
    alias = {}
    for w in words:
        i = 2 + zlib.crc32(w.encode()) % (vocab_size - 2)
        owner = next((o for o, oi in ids.items() if oi == i and o != w), None)
        if owner:
            alias[w] = owner
        else:
            ids[w] = i
    assert len(alias) <= 1, "the trie below holds one key"
    pieces = [["<fill_%d>" % k, -100.0] for k in range(vocab_size)]
    pieces[0], pieces[1], pieces[2] = ["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0]
    for w, i in ids.items():
        pieces[i] = ["\u2581" + w, -1.0]
    units, repl = [0], b""
    for key, value in alias.items():
        # darts-clone as SentencePiece walks it: a unit holds its byte (bits 0-7), a
        # has-value bit (8) and the XOR from its own index to its base (bits 10-30);
        # the child for byte c sits at base ^ c, a node's value at its base.  Bases
        # here are small (root len+1, the i-th byte's node i), so the nodes, at
        # base ^ byte >= 0x20, never land on them.
        kb = key.encode()
        base, nodes = len(kb) + 1, {}
        units = [base]
        for i, c in enumerate(kb, start=1):
            pos = base ^ c
            assert pos not in nodes and pos > len(kb) + 1
            nodes[pos] = c | ((pos ^ i) << 10) | ((1 << 8) if i == len(kb) else 0)
            base = i
        units = [units[0] << 10] + [nodes.get(k, 0) for k in range(1, max(nodes) + 1)]
        repl = value.encode() + b"\0"
    blob = struct.pack("<I", 4 * len(units)) + b"".join(struct.pack("<I", u) for u in units) + repl
    doc = {"model": {"type": "Unigram", "unk_id": 2, "vocab": pieces},
           "normalizer": {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(blob).decode()},
           "added_tokens": [{"id": 0, "special": True}, {"id": 1, "special": True}]}
    json.dump(doc, open(out, "w"))


def tensor(case, name):
    data = open(os.path.join(case, "io.safetensors"), "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    e = json.loads(data[8:8 + n])[name]
    a, b = e["data_offsets"]
    assert e["dtype"] == "F32"
    return e["shape"], struct.unpack("<%df" % ((b - a) // 4), data[8 + n + a:8 + n + b])


def image(case, png):
    (_, c, h, w), x = tensor(case, "out.image")
    shape, pixels = read_png(png)
    assert shape == (w, h, 3), "size or channels differ"
    worst = 0
    for y in range(h):
        for i in range(w):
            for k in range(3):
                v = min(max(x[(k * h + y) * w + i], -1.0), 1.0)
                want = int((v + 1) * 127.5 + 0.5)
                worst = max(worst, abs(pixels[(y * w + i) * 3 + k] - want))
    print(worst)


if __name__ == "__main__":
    {"tokenizer": tokenizer, "image": image}[sys.argv[1]](*sys.argv[2:])
