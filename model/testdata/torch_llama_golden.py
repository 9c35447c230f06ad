#!/usr/bin/python3
"""Golden values for lowrank's model test, from an independent implementation.

Small models (GQA, rotate-half RoPE, SwiGLU, untied head, odd sizes) written
directly in PyTorch with Hugging Face semantics, one per architecture:
  llama  LlamaForCausalLM
  qwen2  Qwen2ForCausalLM: biases on q, k, v
  qwen3  Qwen3ForCausalLM: RMSNorm on each q and k head, head_dim != hidden/heads
For each it writes
  tiny-<arch>/config.json, tiny-<arch>/model.safetensors   the model (F32)
  tiny-<arch>-golden.safetensors                           ids, targets, logits, loss and
                                                           d(loss)/d(every projection,
                                                           bias and norm weight)
Regenerate with:  /usr/bin/python3 torch_llama_golden.py   (PyTorch 1.13, Debian's python3-torch)
"""
import json, math, os, struct
import torch

ARCHS = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}


def build(arch):
    torch.manual_seed(1234)
    cfg = dict(hidden_size=40, intermediate_size=56, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, vocab_size=67, max_position_embeddings=64, rms_norm_eps=1e-5,
               rope_theta=10000.0, tie_word_embeddings=False, hidden_act="silu",
               bos_token_id=1, eos_token_id=2, architectures=[ARCHS[arch]], model_type=arch)
    if arch == "qwen3":
        cfg["head_dim"] = 12
    C, I, L, H, Hkv, V = (cfg[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                          "num_attention_heads", "num_key_value_heads", "vocab_size"))
    D = cfg.get("head_dim", C // H)
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]

    W = {"model.embed_tokens.weight": torch.randn(V, C) * 0.5,
         "model.norm.weight": 1 + 0.1 * torch.randn(C),
         "lm_head.weight": torch.randn(V, C) * 0.2}
    for l in range(L):
        p = f"model.layers.{l}."
        W[p + "input_layernorm.weight"] = 1 + 0.1 * torch.randn(C)
        W[p + "post_attention_layernorm.weight"] = 1 + 0.1 * torch.randn(C)
        W[p + "self_attn.q_proj.weight"] = torch.randn(H * D, C) * 0.2
        W[p + "self_attn.k_proj.weight"] = torch.randn(Hkv * D, C) * 0.2
        W[p + "self_attn.v_proj.weight"] = torch.randn(Hkv * D, C) * 0.2
        W[p + "self_attn.o_proj.weight"] = torch.randn(C, H * D) * 0.2
        W[p + "mlp.gate_proj.weight"] = torch.randn(I, C) * 0.2
        W[p + "mlp.up_proj.weight"] = torch.randn(I, C) * 0.2
        W[p + "mlp.down_proj.weight"] = torch.randn(C, I) * 0.2
        if arch == "qwen2":
            for n, o in (("q", H * D), ("k", Hkv * D), ("v", Hkv * D)):
                W[p + f"self_attn.{n}_proj.bias"] = torch.randn(o) * 0.3
        if arch == "qwen3":
            W[p + "self_attn.q_norm.weight"] = 1 + 0.1 * torch.randn(D)
            W[p + "self_attn.k_norm.weight"] = 1 + 0.1 * torch.randn(D)
    W = {k: v.float().contiguous() for k, v in W.items()}
    params = {k: v.clone().requires_grad_(k != "model.embed_tokens.weight") for k, v in W.items()}

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def rope(x, pos):  # x: (B, heads, T, D), HF rotate-half
        inv = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
        ang = pos[:, None].double() * inv[None, :]
        emb = torch.cat([ang, ang], -1)
        cos, sin = emb.cos().float(), emb.sin().float()
        x1, x2 = x[..., : D // 2], x[..., D // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def forward(ids):
        B, T = ids.shape
        pos = torch.arange(T)
        x = params["model.embed_tokens.weight"][ids]
        mask = torch.full((T, T), float("-inf")).triu(1)
        for l in range(L):
            p = f"model.layers.{l}."
            h = rms(x, params[p + "input_layernorm.weight"])

            def proj(n, heads):
                y = h @ params[p + f"self_attn.{n}_proj.weight"].T
                if arch == "qwen2":
                    y = y + params[p + f"self_attn.{n}_proj.bias"]
                y = y.view(B, T, heads, D)
                if arch == "qwen3" and n in ("q", "k"):
                    y = rms(y, params[p + f"self_attn.{n}_norm.weight"])
                return y.transpose(1, 2)

            q, k, v = proj("q", H), proj("k", Hkv), proj("v", Hkv)
            q, k = rope(q, pos), rope(k, pos)
            k = k.repeat_interleave(H // Hkv, dim=1)
            v = v.repeat_interleave(H // Hkv, dim=1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(D) + mask
            o = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, H * D)
            x = x + o @ params[p + "self_attn.o_proj.weight"].T
            h = rms(x, params[p + "post_attention_layernorm.weight"])
            g = torch.nn.functional.silu(h @ params[p + "mlp.gate_proj.weight"].T) * (h @ params[p + "mlp.up_proj.weight"].T)
            x = x + g @ params[p + "mlp.down_proj.weight"].T
        return rms(x, params["model.norm.weight"]) @ params["lm_head.weight"].T

    ids = torch.randint(0, V, (2, 9))
    targets = torch.randint(0, V, (2, 9))
    targets[0, :3] = -100  # a masked prompt
    targets[1, 8] = -100
    logits = forward(ids)
    loss = torch.nn.functional.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-100)
    loss.backward()
    return cfg, W, params, ids, targets, logits, loss


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        dtype = {torch.float32: "F32", torch.int32: "I32"}[t.dtype]
        b = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


here = os.path.dirname(os.path.abspath(__file__))
for arch in ARCHS:
    cfg, W, params, ids, targets, logits, loss = build(arch)
    d = os.path.join(here, "tiny-" + arch)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), W)
    golden = {"ids": ids.int(), "targets": targets.int(), "logits": logits.reshape(-1, cfg["vocab_size"]), "loss": loss.view(1)}
    for k, v in params.items():
        if v.grad is not None:
            golden["grad." + k] = v.grad
    write_safetensors(os.path.join(here, "tiny-" + arch + "-golden.safetensors"), golden)
    print(arch, "loss", loss.item())
