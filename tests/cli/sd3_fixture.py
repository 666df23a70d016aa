#!/usr/bin/env python3
"""Builds a tiny SD3 bundle from golden parts: sd3_fixture.py GOLDEN_DIR OUT_DIR.

Writes OUT_DIR/sd3.safetensors, laid out as sd3_medium_incl_clips.safetensors (MMDiT under
model.diffusion_model., the 16-channel VAE under first_stage_model., CLIP-L, CLIP-G and T5 under
text_encoders.{clip_l,clip_g,t5xxl}.transformer.), and the same parts as separate files as ComfyUI
keeps them: mmdit_vae.safetensors, clip_l.safetensors, clip_g.safetensors, t5.safetensors.

Parts: the mmdit_sd3 MMDiT; vae_kl16's VAE; clip_text_l's CLIP-L (width 64, no projection, 4 heads);
clip_text_g's bigG tower (width 64, projection 80, 4 heads) converted from the OpenCLIP layout to the
Hugging Face one SD3 files use; t5_encoder's T5 with the vocabulary grown to T5-XXL's 32128 ids so
the real tokenizer's ids fit.  The widths are made to agree as SD3's do: the context is 160 wide (the
CLIP features, 128, zero-padded to it; T5's d_model 160) and the pooled vector 64 + 80 = 144.  Grown
tensors are numpy.resize of the golden values (st_edit resize), so every weight is still random-looking.
"""
import os, struct, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_edit  # noqa: E402

CONTEXT, POOLED, T5_VOCAB, T5_FF, T5_INNER = 160, 144, 32128, 96, 64


def part(golden, case, ops):
    data, _ = st_edit.read(os.path.join(golden, case, "model.safetensors"))
    return st_edit.edit(data, ops)


def mmdit(golden):
    p = "model.diffusion_model."
    return part(golden, "mmdit_sd3", [f"resize:{p}context_embedder.weight:128,{CONTEXT}",
                                      f"resize:{p}y_embedder.mlp.0.weight:128,{POOLED}"])


def t5(golden):
    data = part(golden, "t5_encoder", [f"resize:shared.weight:{T5_VOCAB},{CONTEXT}",
                                       f"resize:encoder.final_layer_norm.weight:{CONTEXT}"])
    for name in list(data):
        shape = data[name][1]
        if name.endswith((".q.weight", ".k.weight", ".v.weight")):
            data = st_edit.edit(data, [f"resize:{name}:{T5_INNER},{CONTEXT}"])
        elif name.endswith(".o.weight"):
            data = st_edit.edit(data, [f"resize:{name}:{CONTEXT},{T5_INNER}"])
        elif name.endswith((".wi_0.weight", ".wi_1.weight")):
            data = st_edit.edit(data, [f"resize:{name}:{T5_FF},{CONTEXT}"])
        elif name.endswith(".wo.weight"):
            data = st_edit.edit(data, [f"resize:{name}:{CONTEXT},{T5_FF}"])
        elif name.endswith("layer_norm.weight") and shape != [CONTEXT]:
            data = st_edit.edit(data, [f"resize:{name}:{CONTEXT}"])
    return data


def transpose(t):
    dtype, (rows, cols), b = t
    vals = struct.unpack(f"<{rows * cols}f", b)
    return dtype, [cols, rows], struct.pack(f"<{rows * cols}f", *(vals[r * cols + c] for c in range(cols)
                                                                   for r in range(rows)))


def clip_g_hf(golden):
    """OpenCLIP text tower -> transformers CLIPTextModelWithProjection keys."""
    src = part(golden, "clip_text_g", ["rename:conditioner.embedders.1.model.="])
    out, tm = {}, "text_model."
    names = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
             "attn.out_proj": "self_attn.out_proj"}
    for name, (dtype, shape, b) in src.items():
        if name.startswith("transformer.resblocks."):
            layer, rest = name[len("transformer.resblocks."):].split(".", 1)
            base = f"{tm}encoder.layers.{layer}."
            if rest.startswith("attn.in_proj_"):
                kind = rest.rsplit("_", 1)[1]  # weight / bias
                third = len(b) // 3
                for i, qkv in enumerate("qkv"):
                    out[f"{base}self_attn.{qkv}_proj.{kind}"] = (dtype, [shape[0] // 3] + shape[1:],
                                                                 b[i * third:(i + 1) * third])
                continue
            module, kind = rest.rsplit(".", 1)
            out[base + names[module] + "." + kind] = (dtype, shape, b)
        elif name == "token_embedding.weight":
            out[tm + "embeddings.token_embedding.weight"] = (dtype, shape, b)
        elif name == "positional_embedding":
            out[tm + "embeddings.position_embedding.weight"] = (dtype, shape, b)
        elif name.startswith("ln_final."):
            out[tm + "final_layer_norm." + name.split(".")[1]] = (dtype, shape, b)
        elif name == "text_projection":
            out["text_projection.weight"] = transpose((dtype, shape, b))
    return out


def prefixed(data, prefix):
    return {prefix + k: v for k, v in data.items()}


def main(golden, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    vae = part(golden, "vae_kl16", [])
    clip_l = part(golden, "clip_text_l", ["drop:cond_stage_model.transformer.text_model.embeddings.position_ids",
                                          "rename:cond_stage_model.transformer.="])
    parts = {"mmdit_vae": {**mmdit(golden), **prefixed(vae, "first_stage_model.")},
             "clip_l": clip_l, "clip_g": clip_g_hf(golden), "t5": t5(golden)}
    whole = dict(parts["mmdit_vae"])
    for name, prefix in (("clip_l", "clip_l"), ("clip_g", "clip_g"), ("t5", "t5xxl")):
        whole.update(prefixed(parts[name], f"text_encoders.{prefix}.transformer."))
    for name, data in parts.items():
        st_edit.write(data, None, os.path.join(out_dir, name + ".safetensors"))
    st_edit.write(whole, None, os.path.join(out_dir, "sd3.safetensors"))


main(sys.argv[1], sys.argv[2])
