#!/usr/bin/env python3
"""Export a PyTorch MLP to libscore's model file (safetensors) and read such files back.

Only the standard library and torch are used: the safetensors container is written by hand
(8-byte little-endian header length, a JSON header padded with spaces, then the raw
little-endian float32 tensors), so the `safetensors` package is not needed.

libscore's MLP (see score_model_save() in include/libscore/model.h):

    h_0 = [x ; e(c) ; u]                         u: context vector (context_dim > 0 only)
    h_1 = phi(W_1 h_0 + b_1 + A[y])              A: label table (num_classes > 0 only)
    h_l = phi(W_l h_{l-1} + b_l)                 hidden layers l = 2 .. L-1
          (+ h_{l-1} when residual, l >= 2 and the widths of l and l-1 match)
    F   = W_L h_{L-1} + b_L

    y: a label in 0 .. num_classes - 1, or num_classes (the null label, also when no label is
    given); A has num_classes + 1 rows of the first hidden width.

    e(c): "fourier"    [sin(2 pi W c), cos(2 pi W c)], W = embed.W (embed_dim / 2 values)
          "sinusoidal" [sin(f c), cos(f c)], f_i = exp(-ln(10000) i / max(half - 1, 1))
          "none"       c itself (one extra input)

Tensors: layers.<i>.weight [out, in] and layers.<i>.bias [out] (like nn.Linear), embed.W,
label_embedding.weight [num_classes + 1, widths[0]] (like nn.Embedding).

Usage as a script (writes a freshly initialised model):
    export_torch.py OUT.safetensors --dim 2 --widths 128,128,128 --activation silu \
        --embedding fourier --embed-dim 32 --fourier-scale 16 --seed 0
As a module:
    model = LibscoreMLP(dim=2, widths=[64, 64], activation="silu")   # an nn.Module
    ... train it with PyTorch (model(x, c) with x: (n, dim), c: (n,)) ...
    cond = LibscoreMLP(dim=2, widths=[64, 64], num_classes=10, context_dim=3)
    ... cond(x, c, labels, context) with labels: (n,) integers, context: (n, 3) ...
    export(model, "model.safetensors")
    export_sequential(nn.Sequential(nn.Linear(3, 64), nn.SiLU(), nn.Linear(64, 2)), "m.safetensors")
    model = load("model.safetensors")                             # back into torch
"""
import argparse
import json
import math
import struct

import torch
from torch import nn

ACTIVATIONS = {
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
}
EMBEDDINGS = ("none", "fourier", "sinusoidal")
FORMAT_VERSION = "1"


class LibscoreMLP(nn.Module):
    """The PyTorch twin of libscore's MLP: model(x, c) -> F, x of shape (n, dim), c of shape (n,);
    with a label or context input model(x, c, labels, context)."""

    def __init__(self, dim, widths, activation="silu", embedding="fourier", embed_dim=32,
                 fourier_scale=16.0, residual=True, seed=0, num_classes=0, context_dim=0):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError("activation must be one of %s" % ", ".join(ACTIVATIONS))
        if embedding not in EMBEDDINGS:
            raise ValueError("embedding must be one of %s" % ", ".join(EMBEDDINGS))
        if embedding != "none" and embed_dim % 2:
            raise ValueError("embed_dim must be even")
        self.dim = int(dim)
        self.widths = [int(w) for w in widths]
        self.activation = activation
        self.embedding = embedding
        self.embed_dim = int(embed_dim)
        self.fourier_scale = float(fourier_scale)
        self.residual = bool(residual)
        self.seed = int(seed)
        self.num_classes = int(num_classes)
        self.context_dim = int(context_dim)
        n_in = self.dim + (1 if embedding == "none" else self.embed_dim) + self.context_dim
        sizes = [n_in] + self.widths + [self.dim]
        self.layers = nn.ModuleList(nn.Linear(sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1))
        self.phi = ACTIVATIONS[activation]()
        if self.num_classes > 0:
            # initialised like libscore: uniform within the first layer's bound
            self.label_embedding = nn.Embedding(self.num_classes + 1, self.widths[0])
            bound = 1.0 / math.sqrt(n_in)
            nn.init.uniform_(self.label_embedding.weight, -bound, bound)
        half = self.embed_dim // 2
        if embedding == "fourier":
            self.register_buffer("embed_W", torch.randn(half) * self.fourier_scale)
        else:
            self.register_buffer("embed_W", torch.zeros(0))

    def embed(self, c):
        """Embedding features of c (computed in float64 like libscore, then rounded)."""
        c = c.to(torch.float64).reshape(-1, 1)
        half = self.embed_dim // 2
        if self.embedding == "none":
            return c
        if self.embedding == "fourier":
            f = 2.0 * math.pi * self.embed_W.to(torch.float64)
        else:
            den = float(max(half - 1, 1))
            f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / den)
        a = c * f.reshape(1, -1)
        return torch.cat([torch.sin(a), torch.cos(a)], dim=1)

    def forward(self, x, c, labels=None, context=None):
        dtype = self.layers[0].weight.dtype
        parts = [x.to(dtype), self.embed(c).to(torch.float32).to(dtype)]
        if self.context_dim > 0:
            if context is None:
                raise ValueError("the model takes a context vector of %d values per row"
                                 % self.context_dim)
            parts.append(context.to(dtype).reshape(x.shape[0], self.context_dim))
        h = torch.cat(parts, dim=1)
        last = len(self.layers) - 1
        for i, lin in enumerate(self.layers):
            z = lin(h)
            if i == 0 and self.num_classes > 0:
                if labels is None:  # the null label
                    labels = torch.full((x.shape[0],), self.num_classes, dtype=torch.long)
                z = z + self.label_embedding(torch.as_tensor(labels, dtype=torch.long))
            if i == last:
                return z
            if self.residual and i >= 1 and z.shape[1] == h.shape[1]:
                h = h + self.phi(z)
            else:
                h = self.phi(z)
        return h


# ---- the safetensors container ---------------------------------------------------------------

def _f32_bytes(t):
    vals = t.detach().to(torch.float32).cpu().contiguous().reshape(-1).tolist()
    return struct.pack("<%df" % len(vals), *vals)


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, torch tensor) written as F32; metadata: dict of str -> str."""
    header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    blobs, offset = [], 0
    for name, t in tensors:
        b = _f32_bytes(t)
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - (8 + len(hjson)) % 8) % 8)  # data section 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Returns (metadata dict, {name: float32 tensor}); F32 tensors only."""
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    base = 8 + hlen
    tensors = {}
    for name, e in header.items():
        if e["dtype"] != "F32":
            raise ValueError("tensor %s: dtype %s is not supported here" % (name, e["dtype"]))
        b, end = e["data_offsets"]
        n = (end - b) // 4
        vals = struct.unpack("<%df" % n, data[base + b:base + end])
        tensors[name] = torch.tensor(vals, dtype=torch.float32).reshape(e["shape"])
    return meta, tensors


# ---- export / import ---------------------------------------------------------------------------

def export(model, path):
    """Writes a LibscoreMLP in libscore's layout."""
    meta = {
        "format": "libscore",
        "version": FORMAT_VERSION,
        "kind": "mlp",
        "library": "export_torch.py",
        "dim": model.dim,
        "widths": ",".join(str(w) for w in model.widths),
        "activation": model.activation,
        "embedding": model.embedding,
        "embed_dim": model.embed_dim,
        "fourier_scale": repr(float(model.fourier_scale)),
        "residual": int(model.residual),
        "seed": model.seed,
    }
    if model.num_classes > 0 or model.context_dim > 0:
        meta["num_classes"] = model.num_classes
        meta["context_dim"] = model.context_dim
    tensors = []
    for i, lin in enumerate(model.layers):
        tensors.append(("layers.%d.weight" % i, lin.weight))
        tensors.append(("layers.%d.bias" % i, lin.bias))
    if model.embedding == "fourier":
        tensors.append(("embed.W", model.embed_W))
    if model.num_classes > 0:
        tensors.append(("label_embedding.weight", model.label_embedding.weight))
    write_safetensors(path, tensors, meta)


def _activation_name(module):
    for name, cls in ACTIVATIONS.items():
        if type(module) is cls:
            if cls is nn.ELU and module.alpha != 1.0:
                break
            if cls is nn.GELU and getattr(module, "approximate", "none") != "none":
                break
            if cls is nn.Softplus and module.beta != 1.0:
                break
            return name
    raise ValueError("unsupported activation module %r" % (module,))


def export_sequential(seq, path, embedding="none", embed_dim=2, fourier_scale=16.0,
                      fourier_W=None):
    """Exports nn.Sequential(Linear, act, Linear, act, ..., Linear) whose input is
    [x, e(c)] (with embedding "none": torch.cat([x, c[:, None]], 1)). No residual blocks.
    For the Fourier embedding pass its projection fourier_W (embed_dim / 2 values)."""
    linears = [m for m in seq if isinstance(m, nn.Linear)]
    acts = [m for m in seq if not isinstance(m, nn.Linear)]
    if len(linears) < 2 or len(acts) != len(linears) - 1:
        raise ValueError("expected Linear, activation, ..., Linear")
    names = {_activation_name(a) for a in acts}
    if len(names) != 1:
        raise ValueError("all activations must be the same")
    dim = linears[-1].out_features
    e = 1 if embedding == "none" else embed_dim
    if linears[0].in_features != dim + e:
        raise ValueError("first layer takes %d inputs, expected dim + embedding = %d"
                         % (linears[0].in_features, dim + e))
    model = LibscoreMLP(dim, [l.out_features for l in linears[:-1]], names.pop(), embedding,
                        embed_dim, fourier_scale, residual=False)
    with torch.no_grad():
        for dst, src in zip(model.layers, linears):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
        if embedding == "fourier":
            if fourier_W is None:
                raise ValueError("the Fourier embedding needs fourier_W")
            model.embed_W.copy_(torch.as_tensor(fourier_W, dtype=torch.float32))
    export(model, path)
    return model


def load(path):
    """Reads a libscore MLP file into a LibscoreMLP (float32)."""
    meta, t = read_safetensors(path)
    if meta.get("format") != "libscore" or meta.get("kind") != "mlp":
        raise ValueError("not a libscore MLP file")
    widths = [int(w) for w in meta["widths"].split(",")]
    model = LibscoreMLP(int(meta["dim"]), widths, meta["activation"], meta["embedding"],
                        int(meta["embed_dim"]), float(meta["fourier_scale"]),
                        meta["residual"] == "1", int(meta["seed"]),
                        int(meta.get("num_classes", "0")), int(meta.get("context_dim", "0")))
    with torch.no_grad():
        for i, lin in enumerate(model.layers):
            lin.weight.copy_(t["layers.%d.weight" % i])
            lin.bias.copy_(t["layers.%d.bias" % i])
        if model.embedding == "fourier":
            model.embed_W.copy_(t["embed.W"])
        if model.num_classes > 0:
            model.label_embedding.weight.copy_(t["label_embedding.weight"])
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--dim", type=int, default=2)
    ap.add_argument("--widths", default="128,128,128")
    ap.add_argument("--activation", default="silu", choices=sorted(ACTIVATIONS))
    ap.add_argument("--embedding", default="fourier", choices=EMBEDDINGS)
    ap.add_argument("--embed-dim", type=int, default=32)
    ap.add_argument("--fourier-scale", type=float, default=16.0)
    ap.add_argument("--no-residual", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-classes", type=int, default=0)
    ap.add_argument("--context-dim", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    model = LibscoreMLP(a.dim, [int(w) for w in a.widths.split(",")], a.activation, a.embedding,
                        a.embed_dim, a.fourier_scale, not a.no_residual, a.seed, a.num_classes,
                        a.context_dim)
    export(model, a.out)
    print("wrote %s (%d parameters)" % (a.out, sum(p.numel() for p in model.parameters())))


if __name__ == "__main__":
    main()
