#!/usr/bin/env python3
"""PyTorch oracle of the U-Net: every layer type and whole networks, float64 on the torch side.

Runs the unet-dump program (first argument; it writes the whole networks' model files into a
temporary directory), rebuilds each case in float64 PyTorch with the same parameters and
inputs, and compares libscore's float32 forward values y and the gradients of L = sum gy . y
with respect to the input (gx), the parameters (gp) and, for residual blocks, the embedding
(ge) with torch's (autograd). Layers: 3x3 and 1x1 convolutions, dense, GroupNorm, SiLU, 2x2
average pooling, nearest up-sampling (torch.nn.functional), the residual block with its time
embedding projection (with and without the 1x1 skip) and attention (the modules of
examples/python/unet_torch.py, the second argument's directory); whole networks are loaded
from their files by unet_torch.load() (labels and the null label through the class embedding,
Fourier and sinusoidal time embeddings) and their parameter gradients are compared in the flat
layout (unet_torch's flat_names()).

Error of an array: max |libscore - torch| / max |torch|. Tolerance 1e-5 for the values and
1e-4 for the gradients (float32 sums of up to a few hundred terms: a few 1e-7 expected).
Exit codes: 0 pass, 1 fail, 77 torch unavailable (skipped).
"""
import math
import os
import subprocess
import sys
import tempfile

try:
    import torch
    import torch.nn.functional as fn
except ImportError:  # pragma: no cover
    print("torch is not importable: skipped")
    sys.exit(77)

sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[2])
import unet_torch as ut  # noqa: E402

torch.set_default_dtype(torch.float64)
TOL_VALUE, TOL_GRAD = 1e-5, 1e-4


def parse(text):
    cases, cur = [], None
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        key = parts[0]
        if key == "case":
            cur = {"name": parts[1], "type": parts[2]}
        elif key == "end":
            cases.append(cur)
            cur = None
        elif key == "dims":
            cur[key] = [int(v) for v in parts[1:]]
        elif key == "file":
            cur[key] = line.split(" ", 1)[1]
        elif key == "labels":
            cur[key] = torch.tensor([int(v) for v in parts[2:]], dtype=torch.long)
        elif key == "c":  # doubles (%.17g)
            cur[key] = torch.tensor([float(v) for v in parts[2:]], dtype=torch.float64)
        else:  # float32 values (%.9g): rounded back to float32 exactly, then widened
            cur[key] = torch.tensor([float(v) for v in parts[2:]], dtype=torch.float32).double()
    return cases


def assign(params, flat):
    """Copies the flat vector into the tensors in order (the layout of the case)."""
    off = 0
    with torch.no_grad():
        for p in params:
            p.copy_(flat[off:off + p.numel()].view_as(p))
            off += p.numel()
    assert off == flat.numel(), "layout has %d values, the dump %d" % (off, flat.numel())


def res_params(blk):
    ps = [blk.norm1.weight, blk.norm1.bias, blk.conv1.weight, blk.conv1.bias,
          blk.temb_proj.weight, blk.temb_proj.bias, blk.norm2.weight, blk.norm2.bias,
          blk.conv2.weight, blk.conv2.bias]
    if blk.skip is not None:
        ps += [blk.skip.weight, blk.skip.bias]
    return ps


def layer(case):
    """(params list, function x[, e] -> y, input shape, extra inputs) of a layer case."""
    t, d = case["type"], case["dims"]
    if t == "conv3":
        n, ci, co, h, w = d
        wt, b = torch.zeros(co, ci, 3, 3), torch.zeros(co)
        return [wt, b], (lambda x: fn.conv2d(x, wt, b, padding=1)), (n, ci, h, w)
    if t == "conv1":
        n, ci, co, h, w = d
        wt, b = torch.zeros(co, ci, 1, 1), torch.zeros(co)
        return [wt, b], (lambda x: fn.conv2d(x, wt, b)), (n, ci, h, w)
    if t == "dense":
        n, i, o = d
        wt, b = torch.zeros(o, i), torch.zeros(o)
        return [wt, b], (lambda x: fn.linear(x, wt, b)), (n, i)
    if t == "gn":
        n, c, h, w, g = d
        gm, bt = torch.zeros(c), torch.zeros(c)
        return [gm, bt], (lambda x: fn.group_norm(x, g, gm, bt, eps=ut.GN_EPS)), (n, c, h, w)
    if t == "silu":
        return [], fn.silu, (d[0],)
    if t == "down":
        nc, h, w = d
        return [], (lambda x: fn.avg_pool2d(x, 2)), (1, nc, h, w)
    if t == "up":
        nc, h, w = d
        return [], (lambda x: fn.interpolate(x, scale_factor=2, mode="nearest")), (1, nc, h, w)
    if t == "res":
        n, ci, co, h, w, ne, g1, g2 = d
        blk = ut.ResBlock(ci, co, ne, 1).double()
        blk.norm1 = torch.nn.GroupNorm(g1, ci, eps=ut.GN_EPS)
        blk.norm2 = torch.nn.GroupNorm(g2, co, eps=ut.GN_EPS)
        return res_params(blk), blk, (n, ci, h, w)
    if t == "attn":
        n, c, h, w, g = d
        a = ut.AttnBlock(c, g).double()
        ps = [a.norm.weight, a.norm.bias]
        for m in (a.q, a.k, a.v, a.proj):
            ps += [m.weight, m.bias]
        return ps, a, (n, c, h, w)
    raise ValueError(t)


def err(got, ref):
    den = ref.abs().max().item()
    return (got - ref).abs().max().item() / (den if den > 0 else 1.0)


def check_layer(case):
    params, f, shape = layer(case)
    assign(params, case["params"])
    for p in params:
        p.requires_grad_(True)
    x = case["x"].view(shape).clone().requires_grad_(True)
    inputs = [x]
    if case["type"] == "res":
        n, ne = case["dims"][0], case["dims"][5]
        e = case["e"].view(n, ne).clone().requires_grad_(True)
        inputs.append(e)
        y = f(x, e)
    else:
        y = f(x)
    gy = case["gy"].view(y.shape)
    grads = torch.autograd.grad((y * gy).sum(), inputs + params, allow_unused=True)
    errs = {"y": err(case["y"], y.detach().reshape(-1)), "gx": err(case["gx"], grads[0].reshape(-1))}
    if case["type"] == "res":
        errs["ge"] = err(case["ge"], grads[1].reshape(-1))
    if params:
        gp = torch.cat([g.reshape(-1) for g in grads[len(inputs):]])
        errs["gp"] = err(case["gp"], gp)
    return errs


def check_net(case):
    model = ut.load(case["file"], dtype=torch.float64)
    names = model.flat_names()
    sd = dict(model.named_parameters())
    flat = torch.cat([sd[n].detach().reshape(-1) for n in names])
    # the file holds the dumped parameters, bit for bit (as float32 values)
    if not torch.equal(flat, case["params"]):
        return {"file params": float("inf")}
    n = case["c"].numel()
    x = case["x"].view(n, -1).clone().requires_grad_(True)
    labels = case["labels"] if case["labels"].numel() else None
    y = model(x, case["c"], labels)
    grads = torch.autograd.grad((y * case["gy"].view(y.shape)).sum(), [x] + [sd[k] for k in names])
    gp = torch.cat([g.reshape(-1) for g in grads[1:]])
    return {"y": err(case["y"], y.detach().reshape(-1)), "gx": err(case["gx"], grads[0].reshape(-1)),
            "gp": err(case["gp"], gp)}


def main():
    with tempfile.TemporaryDirectory(prefix="score-unet-dump-") as tmp:
        out = subprocess.run([sys.argv[1], tmp], check=True, capture_output=True, text=True).stdout
        cases = parse(out)
        failed = 0
        for case in cases:
            errs = check_net(case) if case["type"] == "net" else check_layer(case)
            ok = all(v <= (TOL_VALUE if k == "y" else TOL_GRAD) for k, v in errs.items())
            failed += not ok
            print("%-32s %s %s" % (case["name"], ", ".join("%s %.1e" % kv for kv in errs.items()),
                                   "ok" if ok else "FAIL"))
    if len(cases) < 12:
        print("expected 12 cases, got %d" % len(cases))
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
