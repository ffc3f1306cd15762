#!/usr/bin/env python3
"""PyTorch interoperability of model files: models exported by examples/python/export_torch.py
load in libscore (through ctypes) and compute the same outputs as torch, and files saved by
libscore load back into torch; for networks with label and context inputs also the parameter
gradients (score_model_forward_cond() + score_model_backward() against torch autograd).
Exit code 77 (skipped) when torch is not installed.

usage: test_export_torch.py LIBSCORE_SHARED_LIBRARY EXAMPLES_PYTHON_DIR
"""
import ctypes
import os
import sys
import tempfile

try:
    import torch
    from torch import nn
except ImportError:
    print("torch is not installed: skipped")
    sys.exit(77)

sys.dont_write_bytecode = True  # never write __pycache__ into the source tree
sys.path.insert(0, sys.argv[2])
import export_torch as et  # noqa: E402

# float32 forward in libscore vs a float64 torch forward of the same weights: the float32
# rounding of a few 100-term dot products is ~1e-6 relative; 1e-5 * (1 + |ref|) is the bound.
TOL = 1e-5

lib = ctypes.CDLL(sys.argv[1])
c_size = ctypes.c_size_t
lib.score_model_load.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p]
lib.score_model_save.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
lib.score_model_forward.argtypes = [ctypes.c_void_p, c_size, ctypes.POINTER(ctypes.c_float),
                                    ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_float)]
lib.score_model_free.argtypes = [ctypes.c_void_p]
lib.score_model_dim.argtypes = [ctypes.c_void_p]
lib.score_model_dim.restype = c_size
lib.score_model_new_mlp.argtypes = [ctypes.POINTER(ctypes.c_void_p), c_size, c_size, c_size,
                                    ctypes.c_int, ctypes.c_uint64]
lib.score_model_set_i64.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int64]
lib.score_model_forward_cond.argtypes = [ctypes.c_void_p, c_size, ctypes.POINTER(ctypes.c_float),
                                         ctypes.POINTER(ctypes.c_double),
                                         ctypes.POINTER(ctypes.c_int32),
                                         ctypes.POINTER(ctypes.c_float),
                                         ctypes.POINTER(ctypes.c_float)]
lib.score_model_backward.argtypes = [ctypes.c_void_p, c_size, ctypes.POINTER(ctypes.c_float),
                                     ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
lib.score_model_param_count.argtypes = [ctypes.c_void_p]
lib.score_model_param_count.restype = c_size
lib.score_last_error_message.restype = ctypes.c_char_p
lib.score_param_from_name.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]


def check(rc, what):
    if rc != 0:
        raise RuntimeError("%s failed: %d %s" % (what, rc, lib.score_last_error_message().decode()))


def model_param(name):
    """A model parameter's id, by name from the library's table (SCORE_OBJECT_MODEL = 3)."""
    out = ctypes.c_int()
    check(lib.score_param_from_name(3, name.encode(), ctypes.byref(out)), name)
    return out.value


PARAM_NUM_CLASSES, PARAM_CONTEXT_DIM = model_param("num_classes"), model_param("context_dim")


def lib_forward(handle, x, c):
    n, dim = x.shape
    xs = (ctypes.c_float * (n * dim))(*x.reshape(-1).tolist())
    cs = (ctypes.c_double * n)(*c.tolist())
    out = (ctypes.c_float * (n * dim))()
    check(lib.score_model_forward(handle, n, xs, cs, out), "score_model_forward")
    return torch.tensor(list(out), dtype=torch.float64).reshape(n, dim)


def floats(t):
    v = t.reshape(-1).tolist()
    return (ctypes.c_float * len(v))(*v)


def lib_forward_cond(handle, x, c, labels, context, gout=None):
    """F from score_model_forward_cond(); with gout also the parameter gradient of sum gout . F
    from score_model_backward()."""
    n, dim = x.shape
    xs, out = floats(x), (ctypes.c_float * (n * dim))()
    cs = (ctypes.c_double * n)(*c.tolist())
    ls = (ctypes.c_int32 * n)(*labels.tolist()) if labels is not None else None
    us = floats(context) if context is not None else None
    check(lib.score_model_forward_cond(handle, n, xs, cs, ls, us, out), "score_model_forward_cond")
    f = torch.tensor(list(out), dtype=torch.float64).reshape(n, dim)
    if gout is None:
        return f
    grad = (ctypes.c_float * lib.score_model_param_count(handle))()
    check(lib.score_model_backward(handle, n, floats(gout), grad, None), "score_model_backward")
    return f, torch.tensor(list(grad), dtype=torch.float64)


def torch_flat_grad(model):
    """The parameter gradients in libscore's flat layout (model.h): the layers' weights and
    biases, then the label table."""
    parts = []
    for lin in model.layers:
        parts += [lin.weight.grad.reshape(-1), lin.bias.grad.reshape(-1)]
    if model.num_classes > 0:
        parts.append(model.label_embedding.weight.grad.reshape(-1))
    return torch.cat(parts)


def conditional_cases(tmp):
    """Label and context inputs: outputs and parameter gradients, torch against libscore."""
    failures = 0
    for i, (emb, act, k, m) in enumerate([("fourier", "silu", 5, 0), ("sinusoidal", "tanh", 0, 3),
                                          ("none", "gelu", 3, 2), ("fourier", "elu", 4, 4)]):
        torch.manual_seed(300 + i)
        model = et.LibscoreMLP(dim=3, widths=[32, 32, 24], activation=act, embedding=emb,
                               embed_dim=16, fourier_scale=4.0, residual=True, seed=i,
                               num_classes=k, context_dim=m)
        path = os.path.join(tmp, "cond%d.safetensors" % i)
        et.export(model, path)
        h = lib_load(path)
        x, c = inputs(3, seed=40 + i)
        g = torch.Generator().manual_seed(50 + i)
        labels = torch.arange(x.shape[0]) % (k + 1) if k > 0 else None
        context = torch.randn(x.shape[0], m, generator=g) if m > 0 else None
        gout = torch.randn(x.shape[0], 3, generator=g)
        model = model.double()
        ref = model(x.double(), c, labels, None if context is None else context.double())
        (ref * gout.double()).sum().backward()
        got, grad = lib_forward_cond(h, x, c, labels, context, gout)
        name = "torch -> libscore %s/%s K=%d m=%d" % (emb, act, k, m)
        for what, a, b in ((name, got, ref.detach()),
                           (name + " grad", grad, torch_flat_grad(model))):
            try:
                compare(what, a, b)
            except AssertionError as e:
                print(e)
                failures += 1
        if k > 0:  # no labels = the null label
            try:
                compare(name + " null label", lib_forward_cond(h, x, c, None, context),
                        model(x.double(), c, None,
                              None if context is None else context.double()).detach())
            except AssertionError as e:
                print(e)
                failures += 1
        lib.score_model_free(h)
    # libscore -> torch with both inputs
    h = ctypes.c_void_p()
    check(lib.score_model_new_mlp(ctypes.byref(h), 4, 64, 3, 1, 12), "score_model_new_mlp")
    check(lib.score_model_set_i64(h, PARAM_NUM_CLASSES, 6), "num_classes")
    check(lib.score_model_set_i64(h, PARAM_CONTEXT_DIM, 2), "context_dim")
    path = os.path.join(tmp, "condlib.safetensors").encode()
    check(lib.score_model_save(h, path), "score_model_save")
    model = et.load(path.decode()).double()
    x, c = inputs(4, seed=6)
    labels = torch.arange(x.shape[0]) % 7
    context = torch.randn(x.shape[0], 2, generator=torch.Generator().manual_seed(8))
    try:
        compare("libscore -> torch K=6 m=2", lib_forward_cond(h, x, c, labels, context),
                model(x.double(), c, labels, context.double()).detach())
    except AssertionError as e:
        print(e)
        failures += 1
    lib.score_model_free(h)
    return failures


def lib_load(path):
    h = ctypes.c_void_p()
    check(lib.score_model_load(ctypes.byref(h), path.encode()), "score_model_load")
    return h


def compare(name, got, ref):
    err = ((got - ref).abs() / (1 + ref.abs())).max().item()
    print("%-40s max rel err %.2e" % (name, err))
    if not err <= TOL:
        raise AssertionError("%s: error %.3e > %.1e" % (name, err, TOL))


def inputs(dim, n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=torch.float32)
    c = torch.rand(n, generator=g, dtype=torch.float64)
    return x, c


def main():
    tmp = tempfile.mkdtemp(prefix="score-torch-")
    failures = 0
    cases = []
    for emb in et.EMBEDDINGS:
        for act in sorted(et.ACTIVATIONS):
            cases.append((emb, act, True))
    cases.append(("fourier", "silu", False))
    for i, (emb, act, res) in enumerate(cases):
        torch.manual_seed(100 + i)
        model = et.LibscoreMLP(dim=3, widths=[32, 32, 24], activation=act, embedding=emb,
                               embed_dim=16, fourier_scale=4.0, residual=res, seed=i)
        path = os.path.join(tmp, "m%d.safetensors" % i)
        et.export(model, path)
        h = lib_load(path)
        x, c = inputs(3, seed=i)
        ref = model.double()(x.double(), c).detach()
        try:
            compare("torch -> libscore %s/%s/res=%d" % (emb, act, res), lib_forward(h, x, c), ref)
        except AssertionError as e:
            print(e)
            failures += 1
        lib.score_model_free(h)

    # A plain nn.Sequential (input [x, c]).
    torch.manual_seed(7)
    seq = nn.Sequential(nn.Linear(2 + 1, 48), nn.GELU(), nn.Linear(48, 48), nn.GELU(), nn.Linear(48, 2))
    path = os.path.join(tmp, "seq.safetensors")
    et.export_sequential(seq, path)
    h = lib_load(path)
    x, c = inputs(2, seed=99)
    ref = seq.double()(torch.cat([x.double(), c.float().double().reshape(-1, 1)], 1)).detach()
    try:
        compare("nn.Sequential -> libscore", lib_forward(h, x, c), ref)
    except AssertionError as e:
        print(e)
        failures += 1
    lib.score_model_free(h)

    # libscore -> torch: a model initialised and saved by libscore loads into torch.
    h = ctypes.c_void_p()
    check(lib.score_model_new_mlp(ctypes.byref(h), 4, 64, 3, 1, 11), "score_model_new_mlp")
    path = os.path.join(tmp, "fromlib.safetensors").encode()
    check(lib.score_model_save(h, path), "score_model_save")
    model = et.load(path.decode()).double()
    x, c = inputs(4, seed=5)
    try:
        compare("libscore -> torch (fourier, silu)", lib_forward(h, x, c), model(x.double(), c).detach())
    except AssertionError as e:
        print(e)
        failures += 1
    lib.score_model_free(h)

    failures += conditional_cases(tmp)

    for f in os.listdir(tmp):
        os.remove(os.path.join(tmp, f))
    os.rmdir(tmp)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
