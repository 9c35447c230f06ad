#!/usr/bin/python3
"""PyTorch reference for `lowrank bench train`: the same preset shapes with random
weights, rank-r LoRA on q,k,v,o,gate,up,down (frozen fp32 base), AdamW on the
adapters, batch B×T, causal attention via softmax, cross-entropy over the vocabulary.

  /usr/bin/python3 torch_lora_bench.py --preset stories15m --threads 1 [--batch 4 --seq 256 --rank 8 --steps 3] [--bf16]

--bf16 runs the forward pass under torch.autocast("cpu", dtype=torch.bfloat16)
(PyTorch's own bf16 path: matmuls in bf16 through oneDNN where the build has it).
Prints tokens/s (median step) and peak RSS. PyTorch 1.13 (Debian's python3-torch).
Run it with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (env -u …): set, they
select OpenBLAS's slower Haswell kernel on the AVX-512 machine. It pins the thread
pools (OpenBLAS's, OpenMP's) to --threads and makes OpenMP's idle threads sleep
(OMP_WAIT_POLICY=PASSIVE) instead of spinning on the cores OpenBLAS needs.
"""
import argparse, math, os, resource, time

PRESETS = {  # hidden, intermediate, layers, heads, kv heads, vocab
    "smollm2-135m": (576, 1536, 30, 9, 3, 49152),
    "stories15m": (288, 768, 6, 6, 6, 32000),
    "tinyllama-1.1b": (2048, 5632, 22, 32, 4, 32000),
}
ap = argparse.ArgumentParser()
ap.add_argument("--preset", default="stories15m")
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--batch", type=int, default=4)
ap.add_argument("--seq", type=int, default=256)
ap.add_argument("--rank", type=int, default=8)
ap.add_argument("--steps", type=int, default=3)
ap.add_argument("--bf16", action="store_true")
a = ap.parse_args()
# torch.set_num_threads does not reach Debian's OpenBLAS, whose own pool would
# use every core (a "1-thread" run measured 166% CPU): pin it before the import.
for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[v] = str(a.threads)
# PyTorch's own OpenMP threads (elementwise ops, softmax) spin after each
# parallel region by default, on the cores OpenBLAS's pthreads then need: on
# 2 threads of the 2-core machine that made PyTorch slower than on one (smollm2
# 79 tokens/s against 126 on one thread; with passive waiting 162-200).
os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
import torch  # noqa: E402  (after the thread variables are set)

torch.set_num_threads(a.threads)
torch.manual_seed(0)
C, I, L, H, Hkv, V = PRESETS[a.preset]
D = C // H
R = a.rank


class LoRA(torch.nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(o, i) * 0.02, requires_grad=False)
        self.a = torch.nn.Parameter(torch.randn(R, i) / math.sqrt(i))
        self.b = torch.nn.Parameter(torch.zeros(o, R))

    def forward(self, x):
        return x @ self.w.T + 2.0 * ((x @ self.a.T) @ self.b.T)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = LoRA(C, H * D), LoRA(C, Hkv * D), LoRA(C, Hkv * D), LoRA(H * D, C)
        self.g, self.u, self.d = LoRA(C, I), LoRA(C, I), LoRA(I, C)
        self.n1 = torch.nn.Parameter(torch.ones(C), requires_grad=False)
        self.n2 = torch.nn.Parameter(torch.ones(C), requires_grad=False)


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w


blocks = torch.nn.ModuleList([Block() for _ in range(L)])
emb = torch.randn(V, C) * 0.02
inv = 1.0 / (10000 ** (torch.arange(0, D, 2).float() / D))
ang = torch.arange(a.seq).float()[:, None] * inv[None]
cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
mask = torch.full((a.seq, a.seq), float("-inf")).triu(1)


def rope(x):
    x1, x2 = x[..., :D // 2], x[..., D // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def step(ids, tgt):
    B, T = ids.shape
    x = emb[ids]
    for b in blocks:
        h = rms(x, b.n1)
        q = rope(b.q(h).view(B, T, H, D).transpose(1, 2))
        k = rope(b.k(h).view(B, T, Hkv, D).transpose(1, 2)).repeat_interleave(H // Hkv, 1)
        v = b.v(h).view(B, T, Hkv, D).transpose(1, 2).repeat_interleave(H // Hkv, 1)
        o = ((q @ k.transpose(-1, -2)) / math.sqrt(D) + mask).softmax(-1) @ v
        x = x + b.o(o.transpose(1, 2).reshape(B, T, H * D))
        h = rms(x, b.n2)
        x = x + b.d(torch.nn.functional.silu(b.g(h)) * b.u(h))
    logits = rms(x, torch.ones(C)) @ emb.T
    return torch.nn.functional.cross_entropy(logits.view(-1, V), tgt.view(-1))


params = [p for p in blocks.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0)
ids = torch.randint(0, V, (a.batch, a.seq))
tgt = torch.randint(0, V, (a.batch, a.seq))
times = []
for i in range(a.steps + 1):
    t0 = time.time()
    opt.zero_grad()
    if a.bf16:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = step(ids, tgt)
    else:
        loss = step(ids, tgt)
    loss.backward()
    opt.step()
    if i > 0:
        times.append(time.time() - t0)
times.sort()
med = times[len(times) // 2]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"pytorch {a.preset}{' bf16' if a.bf16 else ''} threads {a.threads}: {a.batch * a.seq / med:.1f} tokens/s, {med * 1000:.0f} ms/step, peak RSS {rss:.0f} MiB")
