#!/usr/bin/env python3
"""U-Net model files and PyTorch (examples/python/unet_torch.py), through ctypes:

- libscore -> torch: U-Nets made by the library (several architectures, random weights) are
  saved with score_model_save() and loaded by unet_torch.load() (strict: every tensor name and
  shape is a parameter of the module tree); the float64 torch forward equals libscore's
  float32 forward (score_model_forward_cond(), labels and the null label) within 1e-5
  relative (max |difference| / max |output|), and the flat parameter vector
  (score_model_params_get()) is the file's tensors in unet_torch's flat_names() order, bit for
  bit.
- torch -> libscore: a LibscoreUNet with torch's own initialisation written by unet_torch.save()
  loads in libscore (score_model_load()) with the same outputs.
Exit code 77 (skipped) when torch is not installed.

usage: test_unet_torch.py LIBSCORE_SHARED_LIBRARY EXAMPLES_PYTHON_DIR
"""
import ctypes
import os
import sys
import tempfile

try:
    import torch
except ImportError:
    print("torch is not installed: skipped")
    sys.exit(77)

sys.dont_write_bytecode = True  # never write __pycache__ into the source tree
sys.path.insert(0, sys.argv[2])
import unet_torch as ut  # noqa: E402

# libscore computes in float32 (3x3 convolutions of a few hundred terms, GroupNorm, softmax);
# the torch side in float64: the largest error observed is a few 1e-7.
TOL = 1e-5

lib = ctypes.CDLL(sys.argv[1])
c_size, vp = ctypes.c_size_t, ctypes.c_void_p
lib.score_model_new_unet.argtypes = [ctypes.POINTER(vp), c_size, c_size, c_size]
lib.score_model_set_unet_widths.argtypes = [vp, c_size, ctypes.POINTER(c_size)]
lib.score_model_set_i64.argtypes = [vp, ctypes.c_int, ctypes.c_int64]
lib.score_model_prepare.argtypes = [vp]
lib.score_model_param_count.argtypes = [vp]
lib.score_model_param_count.restype = c_size
lib.score_model_params_get.argtypes = [vp, ctypes.POINTER(ctypes.c_float), c_size]
lib.score_model_params_set.argtypes = [vp, ctypes.POINTER(ctypes.c_float), c_size]
lib.score_model_save.argtypes = [vp, ctypes.c_char_p]
lib.score_model_load.argtypes = [ctypes.POINTER(vp), ctypes.c_char_p]
lib.score_model_free.argtypes = [vp]
lib.score_model_forward_cond.argtypes = [vp, c_size, ctypes.POINTER(ctypes.c_float),
                                         ctypes.POINTER(ctypes.c_double),
                                         ctypes.POINTER(ctypes.c_int32),
                                         ctypes.POINTER(ctypes.c_float),
                                         ctypes.POINTER(ctypes.c_float)]
lib.score_last_error_message.restype = ctypes.c_char_p
lib.score_param_from_name.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]


def check(rc, what):
    if rc != 0:
        raise RuntimeError("%s failed: %d %s" % (what, rc, lib.score_last_error_message().decode()))


def param(name):
    out = ctypes.c_int()
    check(lib.score_param_from_name(3, name.encode(), ctypes.byref(out)), name)  # SCORE_OBJECT_MODEL
    return out.value


def floats(t):
    v = t.reshape(-1).tolist()
    return (ctypes.c_float * len(v))(*v)


def lib_params(h):
    n = lib.score_model_param_count(h)
    buf = (ctypes.c_float * n)()
    check(lib.score_model_params_get(h, buf, n), "score_model_params_get")
    return torch.tensor(list(buf), dtype=torch.float32)


def lib_forward(h, x, c, labels):
    n, dim = x.shape
    out = (ctypes.c_float * (n * dim))()
    cs = (ctypes.c_double * n)(*c.tolist())
    ls = (ctypes.c_int32 * n)(*labels.tolist()) if labels is not None else None
    check(lib.score_model_forward_cond(h, n, floats(x), cs, ls, None, out),
          "score_model_forward_cond")
    return torch.tensor(list(out), dtype=torch.float64).reshape(n, dim)


def make_unet(cfg, seed):
    """A prepared libscore U-Net of cfg with random weights (GroupNorm scales near 1)."""
    h = vp()
    check(lib.score_model_new_unet(ctypes.byref(h), cfg["C"], cfg["H"], cfg["W"]), "new_unet")
    mults = (c_size * len(cfg["mults"]))(*cfg["mults"])
    check(lib.score_model_set_unet_widths(h, len(cfg["mults"]), mults), "set_unet_widths")
    for name in ("unet_base_width", "unet_blocks", "unet_groups", "unet_attention",
                 "unet_temb_dim", "embedding", "embed_dim", "num_classes", "seed"):
        if name in cfg:
            check(lib.score_model_set_i64(h, param(name), cfg[name]), name)
    check(lib.score_model_prepare(h), "prepare")
    p = lib_params(h)
    g = torch.Generator().manual_seed(seed)
    p = torch.where(p == 1.0, torch.ones_like(p), torch.zeros_like(p)) + \
        0.3 * (2 * torch.rand(p.shape, generator=g) - 1)
    check(lib.score_model_params_set(h, floats(p), p.numel()), "params_set")
    return h


def compare(name, got, ref):
    err = ((got - ref).abs().max() / ref.abs().max()).item()
    ok = err <= TOL
    print("%-52s max rel err %.2e %s" % (name, err, "ok" if ok else "FAIL"))
    return 0 if ok else 1


def inputs(cfg, n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cfg["C"] * cfg["H"] * cfg["W"], generator=g, dtype=torch.float32)
    c = torch.rand(n, generator=g, dtype=torch.float64)
    return x, c


CASES = [
    ("1x8x8 K=3 fourier attention", dict(C=1, H=8, W=8, mults=[1, 2, 2], unet_base_width=8,
                                          unet_blocks=1, unet_groups=4, unet_attention=1,
                                          embed_dim=8, num_classes=3, seed=3)),
    ("3x4x8 sinusoidal no attention 2 blocks", dict(C=3, H=4, W=8, mults=[1, 2], unet_base_width=6,
                                                    unet_blocks=2, unet_groups=3, unet_attention=0,
                                                    embedding=2, embed_dim=6, unet_temb_dim=10,
                                                    seed=11)),
    ("2x4x4 one level K=2", dict(C=2, H=4, W=4, mults=[2], unet_base_width=4, unet_blocks=1,
                                 unet_groups=8, embed_dim=4, num_classes=2)),
]


def main():
    tmp = tempfile.mkdtemp(prefix="score-unet-torch-")
    failures = 0
    for i, (name, cfg) in enumerate(CASES):
        h = make_unet(cfg, 100 + i)
        path = os.path.join(tmp, "lib%d.safetensors" % i)
        check(lib.score_model_save(h, path.encode()), "score_model_save")
        model = ut.load(path, dtype=torch.float64)
        # the file's tensors in data order, and the flat layout, against the module's names
        _, tensors, order = ut.read_safetensors(path)
        names = model.flat_names()
        want = names + (["embed.W"] if model.embedding == "fourier" else [])
        if order != want:
            print("%s: tensor order differs from flat_names(): FAIL" % name)
            failures += 1
        flat = torch.cat([tensors[n].reshape(-1) for n in names])
        if not torch.equal(flat, lib_params(h)):
            print("%s: the flat parameters are not the file's tensors in order: FAIL" % name)
            failures += 1
        x, c = inputs(cfg, 10, 7 + i)
        K = cfg.get("num_classes", 0)
        labels = torch.arange(10) % (K + 1) if K > 0 else None
        ref = model(x.double(), c, labels).detach()
        failures += compare("libscore -> torch %s" % name, lib_forward(h, x, c, labels), ref)
        if K > 0:  # no labels: the null label
            failures += compare("libscore -> torch %s, null label" % name,
                                lib_forward(h, x, c, None), model(x.double(), c).detach())
        lib.score_model_free(h)
        # torch -> libscore: torch's initialisation (the output convolution is not zero)
        torch.manual_seed(200 + i)
        tm = ut.from_metadata(dict(ut.read_safetensors(path)[0]))
        if tm.embedding == "fourier":
            with torch.no_grad():
                tm.embed.W.copy_(torch.randn(tm.embed.W.shape) * 4.0)
        path2 = os.path.join(tmp, "torch%d.safetensors" % i)
        ut.save(tm, path2)
        h2 = vp()
        check(lib.score_model_load(ctypes.byref(h2), path2.encode()), "score_model_load")
        tm = tm.double()
        failures += compare("torch -> libscore %s" % name, lib_forward(h2, x, c, labels),
                            tm(x.double(), c, labels).detach())
        lib.score_model_free(h2)
    print("%d failure(s)" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
