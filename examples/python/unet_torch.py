#!/usr/bin/env python3
"""libscore's U-Net (SCORE_MODEL_UNET) as a PyTorch nn.Module, and its model files.

The module tree of LibscoreUNet maps one to one onto the tensors of a libscore U-Net file
(score_model_save(), doc/unet.md "Files"): model.state_dict() has exactly the file's tensor
names and shapes, so load() is load_state_dict(strict=True) and save() writes the state dict.
Only the standard library and torch are used: the safetensors container is parsed and written
by hand (8-byte little-endian header length, a JSON header, then the raw little-endian float32
tensors), so the `safetensors` package is not needed.

The network (doc/unet.md; x: images (n, C, H, W), c: the conditioning values (n,), y: labels):

    f = [sin(w c), cos(w c)]              w = 2 pi embed.W (Fourier) or the sinusoidal
                                          frequencies exp(-ln(10000) i / max(E/2 - 1, 1));
                                          computed in float64, rounded to float32
    t = temb.1(silu(temb.0(f))) + label_emb(y)      e = silu(t)
    h = conv_in(x); skips = [h]
    down.l: B blocks res.k (each pushed on skips); 2x2 average pooling between levels (pushed)
    mid: res.0, attn (optional), res.1
    up.l (l = L-1 .. 0): B + 1 blocks res.k of cat(h, skips.pop()); l > 0: conv(nearest2x(h))
    F = conv_out(silu(norm_out(h)))

    res: h1 = conv1(silu(norm1(x))) + temb_proj(e)[:, :, None, None]
         y  = (skip(x) + conv2(silu(norm2(h1)))) / sqrt(2)    skip: identity or 1x1 conv
    attn: a = norm(x); q, k, v = 1x1 convs of a; W = softmax_j(q_i . k_j / sqrt(c))
          y = (x + proj(sum_j W_ij v_j)) / sqrt(2)
    GroupNorm: min(unet_groups, channels) groups, eps 1e-6.

Usage:
    model = load("unet.safetensors", dtype=torch.float64)   # the architecture from the file
    F = model(x, c, labels)          # x (n, C, H, W) or (n, C*H*W); labels None: null label
    save(model, "copy.safetensors")  # a file libscore loads (score_model_load())
As a script: unet_torch.py MODEL.safetensors prints the architecture and parameter count.
"""
import json
import math
import struct
import sys

import torch
import torch.nn.functional as fn
from torch import nn

GN_EPS = 1e-6
FORMAT_VERSION = "1"
EMBEDDINGS = ("fourier", "sinusoidal")


def _gn(groups, c):
    return nn.GroupNorm(min(groups, c), c, eps=GN_EPS)


class ResBlock(nn.Module):
    def __init__(self, ci, co, temb, groups):
        super().__init__()
        self.norm1 = _gn(groups, ci)
        self.conv1 = nn.Conv2d(ci, co, 3, padding=1)
        self.temb_proj = nn.Linear(temb, co)
        self.norm2 = _gn(groups, co)
        self.conv2 = nn.Conv2d(co, co, 3, padding=1)
        self.skip = nn.Conv2d(ci, co, 1) if ci != co else None

    def forward(self, x, e):
        h = self.conv1(fn.silu(self.norm1(x))) + self.temb_proj(e)[:, :, None, None]
        h = self.conv2(fn.silu(self.norm2(h)))
        s = x if self.skip is None else self.skip(x)
        return (s + h) / math.sqrt(2.0)


class AttnBlock(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm = _gn(groups, c)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        a = self.norm(x)
        q = self.q(a).reshape(n, c, h * w)
        k = self.k(a).reshape(n, c, h * w)
        v = self.v(a).reshape(n, c, h * w)
        wts = torch.softmax(torch.einsum("nci,ncj->nij", q, k) / math.sqrt(c), dim=2)
        o = torch.einsum("nij,ncj->nci", wts, v).reshape(n, c, h, w)
        return (x + self.proj(o)) / math.sqrt(2.0)


class Level(nn.Module):
    """The blocks of one resolution (res.k) and, on the way up, the convolution after the
    nearest up-sampling to the next level (conv, levels > 0)."""

    def __init__(self, blocks, conv=None):
        super().__init__()
        self.res = nn.ModuleList(blocks)
        if conv is not None:
            self.conv = conv


class Mid(nn.Module):
    def __init__(self, c, temb, groups, attention):
        super().__init__()
        self.res = nn.ModuleList([ResBlock(c, c, temb, groups), ResBlock(c, c, temb, groups)])
        self.attn = AttnBlock(c, groups) if attention else None


class Embed(nn.Module):
    """Holds the fixed Fourier projection embed.W (a buffer, not a parameter)."""

    def __init__(self, half):
        super().__init__()
        self.register_buffer("W", torch.zeros(half))


class LibscoreUNet(nn.Module):
    def __init__(self, channels, height, width, base_width=32, mults=(1, 2, 2), blocks=2,
                 groups=8, attention=True, temb_dim=0, embedding="fourier", embed_dim=32,
                 fourier_scale=16.0, num_classes=0, seed=0):
        super().__init__()
        if embedding not in EMBEDDINGS:
            raise ValueError("embedding must be one of %s" % ", ".join(EMBEDDINGS))
        if embed_dim % 2:
            raise ValueError("embed_dim must be even")
        L = len(mults)
        if height % (1 << (L - 1)) or width % (1 << (L - 1)):
            raise ValueError("height and width must be divisible by 2^(levels - 1)")
        self.channels, self.height, self.width = int(channels), int(height), int(width)
        self.base_width, self.mults = int(base_width), [int(m) for m in mults]
        self.blocks, self.groups, self.attention = int(blocks), int(groups), bool(attention)
        self.temb_dim = int(temb_dim) if temb_dim else 4 * self.base_width
        self.embedding, self.embed_dim = embedding, int(embed_dim)
        self.fourier_scale, self.num_classes, self.seed = float(fourier_scale), int(num_classes), int(seed)
        T, g, B = self.temb_dim, self.groups, self.blocks
        self.temb = nn.ModuleList([nn.Linear(self.embed_dim, T), nn.Linear(T, T)])
        if self.num_classes > 0:
            self.label_emb = nn.Embedding(self.num_classes + 1, T)
        ch = self.base_width * self.mults[0]
        self.conv_in = nn.Conv2d(self.channels, ch, 3, padding=1)
        skips = [ch]
        down = []
        for l in range(L):
            co = self.base_width * self.mults[l]
            res = []
            for _ in range(B):
                res.append(ResBlock(ch, co, T, g))
                ch = co
                skips.append(ch)
            if l + 1 < L:
                skips.append(ch)
            down.append(Level(res))
        self.down = nn.ModuleList(down)
        self.mid = Mid(ch, T, g, self.attention)
        up = [None] * L
        for l in reversed(range(L)):
            co = self.base_width * self.mults[l]
            res = []
            for _ in range(B + 1):
                res.append(ResBlock(ch + skips.pop(), co, T, g))
                ch = co
            up[l] = Level(res, nn.Conv2d(ch, ch, 3, padding=1) if l > 0 else None)
        self.up = nn.ModuleList(up)
        self.norm_out = _gn(g, ch)
        self.conv_out = nn.Conv2d(ch, self.channels, 3, padding=1)
        if self.embedding == "fourier":
            self.embed = Embed(self.embed_dim // 2)

    def features(self, c):
        """The embedding features of c: float64 arithmetic rounded to float32, as libscore."""
        half = self.embed_dim // 2
        c = torch.as_tensor(c, dtype=torch.float64).reshape(-1, 1)
        if self.embedding == "fourier":
            f = 2.0 * math.pi * self.embed.W.to(torch.float32).to(torch.float64)
        else:
            den = float(max(half - 1, 1))
            f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / den)
        a = c * f.reshape(1, -1)
        return torch.cat([torch.sin(a), torch.cos(a)], dim=1).to(torch.float32)

    def embedding_of(self, c, labels=None):
        """e = silu(t), the input of every residual block's temb_proj."""
        dtype = self.conv_in.weight.dtype
        t = self.temb[1](fn.silu(self.temb[0](self.features(c).to(dtype))))
        if self.num_classes > 0:
            if labels is None:  # the null label
                labels = torch.full((t.shape[0],), self.num_classes, dtype=torch.long)
            t = t + self.label_emb(torch.as_tensor(labels, dtype=torch.long))
        return fn.silu(t)

    def forward(self, x, c, labels=None):
        n = x.shape[0]
        flat = x.dim() == 2
        h = x.reshape(n, self.channels, self.height, self.width).to(self.conv_in.weight.dtype)
        e = self.embedding_of(c, labels)
        h = self.conv_in(h)
        skips = [h]
        L = len(self.mults)
        for l in range(L):
            for blk in self.down[l].res:
                h = blk(h, e)
                skips.append(h)
            if l + 1 < L:
                h = fn.avg_pool2d(h, 2)
                skips.append(h)
        h = self.mid.res[0](h, e)
        if self.mid.attn is not None:
            h = self.mid.attn(h)
        h = self.mid.res[1](h, e)
        for l in reversed(range(L)):
            for blk in self.up[l].res:
                h = blk(torch.cat([h, skips.pop()], dim=1), e)
            if l > 0:
                h = self.up[l].conv(fn.interpolate(h, scale_factor=2, mode="nearest"))
        out = self.conv_out(fn.silu(self.norm_out(h)))
        return out.reshape(n, -1) if flat else out

    def metadata(self):
        return {
            "dim": str(self.channels * self.height * self.width),
            "channels": str(self.channels), "height": str(self.height),
            "width": str(self.width), "unet_base_width": str(self.base_width),
            "unet_mults": ",".join(str(m) for m in self.mults),
            "unet_blocks": str(self.blocks), "unet_groups": str(self.groups),
            "unet_attention": "1" if self.attention else "0",
            "unet_temb_dim": str(self.temb_dim), "embedding": self.embedding,
            "embed_dim": str(self.embed_dim), "fourier_scale": repr(self.fourier_scale),
            "num_classes": str(self.num_classes), "seed": str(self.seed),
        }

    def flat_names(self):
        """The tensor names in the order of libscore's flat parameter vector
        (score_model_params_get(), doc/unet.md "Flat parameter layout"); embed.W is not in it."""
        def res(p, blk):
            out = [p + s for s in (".norm1.weight", ".norm1.bias", ".conv1.weight", ".conv1.bias",
                                   ".temb_proj.weight", ".temb_proj.bias", ".norm2.weight",
                                   ".norm2.bias", ".conv2.weight", ".conv2.bias")]
            if blk.skip is not None:
                out += [p + ".skip.weight", p + ".skip.bias"]
            return out
        names = ["temb.0.weight", "temb.0.bias", "temb.1.weight", "temb.1.bias"]
        if self.num_classes > 0:
            names.append("label_emb.weight")
        names += ["conv_in.weight", "conv_in.bias"]
        for l, lev in enumerate(self.down):
            for k, blk in enumerate(lev.res):
                names += res("down.%d.res.%d" % (l, k), blk)
        names += res("mid.res.0", self.mid.res[0])
        if self.mid.attn is not None:
            names += ["mid.attn.%s.%s" % (m, s) for m in ("norm", "q", "k", "v", "proj")
                      for s in ("weight", "bias")]
        names += res("mid.res.1", self.mid.res[1])
        for l in reversed(range(len(self.mults))):
            for k, blk in enumerate(self.up[l].res):
                names += res("up.%d.res.%d" % (l, k), blk)
            if l > 0:
                names += ["up.%d.conv.weight" % l, "up.%d.conv.bias" % l]
        names += ["norm_out.weight", "norm_out.bias", "conv_out.weight", "conv_out.bias"]
        return names


# ---- the safetensors container ---------------------------------------------------------------

def read_safetensors(path):
    """Returns (metadata dict, {name: float32 tensor}, [names in data order]); F32 only."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("%s: not a safetensors file" % path)
    (hlen,) = struct.unpack("<Q", data[:8])
    if hlen > len(data) - 8:
        raise ValueError("%s: header length beyond the file" % path)
    header = json.loads(data[8:8 + hlen].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    base = 8 + hlen
    tensors, order = {}, []
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        if e["dtype"] != "F32":
            raise ValueError("tensor %s: dtype %s is not supported here" % (name, e["dtype"]))
        b, end = e["data_offsets"]
        n = 1
        for s in e["shape"]:
            n *= s
        if end - b != 4 * n or base + end > len(data):
            raise ValueError("tensor %s: data offsets do not match its shape" % name)
        vals = struct.unpack("<%df" % n, data[base + b:base + end])
        tensors[name] = torch.tensor(vals, dtype=torch.float32).reshape(e["shape"])
        order.append(name)
    return meta, tensors, order


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, tensor) written as F32 in that order; metadata: str -> str."""
    header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    blobs, offset = [], 0
    for name, t in tensors:
        vals = t.detach().to(torch.float32).cpu().contiguous().reshape(-1).tolist()
        b = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - (8 + len(hjson)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


# ---- load / save -------------------------------------------------------------------------------

def from_metadata(meta):
    """An (uninitialised) LibscoreUNet of the architecture in a file's metadata."""
    if meta.get("format") != "libscore" or meta.get("kind") != "unet":
        raise ValueError("not a libscore U-Net file (metadata 'format' / 'kind')")
    return LibscoreUNet(int(meta["channels"]), int(meta["height"]), int(meta["width"]),
                        int(meta["unet_base_width"]),
                        [int(m) for m in meta["unet_mults"].split(",")],
                        int(meta["unet_blocks"]), int(meta["unet_groups"]),
                        meta["unet_attention"] == "1", int(meta["unet_temb_dim"]),
                        meta["embedding"], int(meta["embed_dim"]),
                        float(meta["fourier_scale"]), int(meta["num_classes"]),
                        int(meta["seed"]))


def load(path, dtype=torch.float32):
    """Reads a libscore U-Net file (score_model_save(), or a generative model file saved by
    score_genmodel_save() / `score train --model unet`) into a LibscoreUNet of that dtype.
    Every tensor must match a parameter (strict: none missing, none extra)."""
    meta, tensors, _ = read_safetensors(path)
    model = from_metadata(meta)
    model.load_state_dict(tensors, strict=True)
    return model.to(dtype)


def save(model, path):
    """Writes a LibscoreUNet as a libscore U-Net file (tensors in the flat layout's order)."""
    meta = {"format": "libscore", "version": FORMAT_VERSION, "kind": "unet",
            "library": "unet_torch.py"}
    meta.update(model.metadata())
    sd = model.state_dict()
    names = model.flat_names() + (["embed.W"] if model.embedding == "fourier" else [])
    write_safetensors(path, [(n, sd[n]) for n in names], meta)


def main():
    if len(sys.argv) != 2:
        print("usage: unet_torch.py MODEL.safetensors", file=sys.stderr)
        return 2
    model = load(sys.argv[1])
    print("U-Net %dx%dx%d, base width %d, multipliers %s, %d blocks, %d groups, attention %s, "
          "embedding %s (%d), T %d, %d classes: %d parameters"
          % (model.channels, model.height, model.width, model.base_width, model.mults,
             model.blocks, model.groups, model.attention, model.embedding, model.embed_dim,
             model.temb_dim, model.num_classes, sum(p.numel() for p in model.parameters())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
