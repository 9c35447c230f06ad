#!/usr/bin/python3
"""Golden values for lowrank's LoRA training-step parity test.

stories260K (Hugging Face form, f32) with rank-4 LoRA adapters on all seven
projections, initialized to non-zero seeded values, written in PEFT's layout to
parity/adapter/. One training example (33 token ids) is written to
parity/example.json. Then, in PyTorch (an independent implementation of the
model and of the optimizers), from that same starting adapter:
  - one SGD step, lr 0.1                                  -> sgd.* tensors
  - one AdamW step, lr 0.01, weight decay 0.01, defaults  -> adamw.* tensors
The loss before the step and the updated adapters go to parity/golden.safetensors.

Regenerate:  /usr/bin/python3 torch_lora_step.py [path/to/stories260K/hf]   (PyTorch 1.13)
"""
import json, math, os, struct, sys
import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../../../shared/assets/models/stories260K/hf")


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32"
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).copy()).reshape(v["shape"])
    return out


def write_safetensors(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        b = t.detach().contiguous().float().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


cfg = json.load(open(os.path.join(src, "config.json")))
W = read_safetensors(os.path.join(src, "model.safetensors"))
C, L, H, Hkv, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"]
D = C // H
eps, theta = cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
R, ALPHA = 4, 8.0
SCALE = ALPHA / R
MODS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]

torch.manual_seed(260)
adapter = {}
for l in range(L):
    for m in MODS:
        w = W[f"model.layers.{l}.{m}.weight"]
        key = f"base_model.model.model.layers.{l}.{m}"
        adapter[key + ".lora_A.weight"] = torch.randn(R, w.shape[1]) * 0.1
        adapter[key + ".lora_B.weight"] = torch.randn(w.shape[0], R) * 0.1

os.makedirs(os.path.join(here, "parity", "adapter"), exist_ok=True)
write_safetensors(os.path.join(here, "parity", "adapter", "adapter_model.safetensors"), adapter, {"format": "pt"})
json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": R, "lora_alpha": ALPHA, "lora_dropout": 0.0,
           "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
           "use_rslora": False, "use_dora": False, "bias": "none", "base_model_name_or_path": "stories260K"},
          open(os.path.join(here, "parity", "adapter", "adapter_config.json"), "w"), indent=2)
# "Once upon a time, there was a little dog named Max. He liked to run in the park with his friends."
ids = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 400, 428, 395, 392, 412, 444, 426, 346, 397, 355, 267,
       352, 379, 322, 265, 282, 295, 433, 335, 345, 374, 419, 426]
json.dump({"input_ids": ids}, open(os.path.join(here, "parity", "example.json"), "w"))


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, pos):
    inv = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    ang = pos[:, None].double() * inv[None, :]
    emb = torch.cat([ang, ang], -1)
    cos, sin = emb.cos().float(), emb.sin().float()
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def loss_fn(P):
    x_ids = torch.tensor(ids[:-1])[None]
    tgt = torch.tensor(ids[1:])
    T = x_ids.shape[1]
    pos = torch.arange(T)
    mask = torch.full((T, T), float("-inf")).triu(1)

    def lin(h, l, m):
        key = f"base_model.model.model.layers.{l}.{m}"
        return h @ W[f"model.layers.{l}.{m}.weight"].T + SCALE * ((h @ P[key + ".lora_A.weight"].T) @ P[key + ".lora_B.weight"].T)

    x = W["model.embed_tokens.weight"][x_ids]
    for l in range(L):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"])
        q = lin(h, l, "self_attn.q_proj").view(1, T, H, D).transpose(1, 2)
        k = lin(h, l, "self_attn.k_proj").view(1, T, Hkv, D).transpose(1, 2)
        v = lin(h, l, "self_attn.v_proj").view(1, T, Hkv, D).transpose(1, 2)
        q, k = rope(q, pos), rope(k, pos)
        k, v = k.repeat_interleave(H // Hkv, 1), v.repeat_interleave(H // Hkv, 1)
        o = ((q @ k.transpose(-1, -2)) / math.sqrt(D) + mask).softmax(-1) @ v
        x = x + lin(o.transpose(1, 2).reshape(1, T, H * D), l, "self_attn.o_proj")
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        x = x + lin(torch.nn.functional.silu(lin(h, l, "mlp.gate_proj")) * lin(h, l, "mlp.up_proj"), l, "mlp.down_proj")
    logits = rms(x, W["model.norm.weight"]) @ W["model.embed_tokens.weight"].T
    return torch.nn.functional.cross_entropy(logits[0], tgt)


golden = {}
for name, make in (("sgd", lambda ps: torch.optim.SGD(ps, lr=0.1)),
                   ("adamw", lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.01))):
    P = {k: v.clone().requires_grad_(True) for k, v in adapter.items()}
    opt = make(list(P.values()))
    loss = loss_fn(P)
    loss.backward()
    opt.step()
    golden["loss"] = loss.detach().view(1)
    for k, v in P.items():
        golden[name + "." + k] = v.detach()
    print(name, "loss", loss.item())
write_safetensors(os.path.join(here, "parity", "golden.safetensors"), golden)
