#!/usr/bin/env python3
"""PyTorch oracle for libscore's losses (and the classifier's input gradient).

Runs the loss-dump program (first argument), rebuilds each case's MLP in float64 PyTorch from
the dumped architecture and flat parameters, recomputes the loss from the definitions in
include/libscore/loss.h and the schedule / parameterization formulas (score_sde, EDM) with the
dumped noise, and compares the loss value and its parameter gradient (autograd; the Jacobian
trace and v^T J v by double backward) with libscore's. Conditional networks (a label table and
context columns) go through every kind of loss; the noise-conditional classifier through its
cross-entropy, and its input gradient grad_x log p(y | x, t) and log p are compared too.

The energy model (energy-* cases): its energy E(x, c), its score -grad_x E, and the losses'
parameter gradients through -grad_x E (double backward: torch differentiates the autograd
gradient again; for the Hyvärinen, SSM and SM-VR losses, whose trace / v^T J v terms are second
derivatives of E, the parameter gradient is a third derivative), with labels and context too.

Tolerance: 1e-4 relative (value; gradient: max abs difference over the largest component).
libscore evaluates the network in float32, so agreement is expected to ~1e-6.
Exit codes: 0 pass, 1 fail, 77 torch unavailable (skipped).
"""
import math
import subprocess
import sys

try:
    import torch
except ImportError:  # pragma: no cover
    print("torch is not importable: skipped")
    sys.exit(77)

torch.set_default_dtype(torch.float64)
TOL = 1e-4


def parse(text):
    cases, cur = [], None
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        key = parts[0]
        if key == "case":
            cur = {"name": parts[1]}
        elif key == "end":
            cases.append(cur)
            cur = None
        elif key in ("widths", "residual"):
            cur[key] = [int(v) for v in parts[2:]]
        elif key in ("fourier", "params", "x", "z", "u", "idx", "level_sigma", "level_alpha",
                     "v", "grad", "labels", "ctx", "gx_t", "logp", "gx", "E", "score"):
            cur[key] = torch.tensor([float(v) for v in parts[2:]])
        elif key in ("loss_kind", "sched", "act"):
            cur[key] = parts[1]
        else:
            cur[key] = float(parts[1])
    return cases


ACT = {
    "silu": torch.nn.functional.silu,
    "softplus": torch.nn.functional.softplus,
    "tanh": torch.tanh,
    "elu": torch.nn.functional.elu,
    "gelu": lambda z: torch.nn.functional.gelu(z, approximate="none"),
}


def mlp(case, params, x, c):
    """F(x, c, label, context): h0 = [x; sin(2 pi W c), cos(2 pi W c); context], hidden
    layers with optional residual, the label's row of the (K + 1) x n_1 table added to the
    first pre-activation, linear output (model.h / mlp.c)."""
    W = case["fourier"]
    proj = 2 * math.pi * c[:, None] * W[None, :]
    parts = [x, torch.sin(proj), torch.cos(proj)]
    m = int(case.get("m", 0))
    if m:
        parts.append(case["ctx"].view(x.shape[0], m))
    h = torch.cat(parts, dim=1)
    widths, res, act = case["widths"], case["residual"], ACT[case["act"]]
    L = len(widths) - 1
    off = 0
    for l in range(1, L + 1):
        nout, nin = widths[l], widths[l - 1]
        Wl = params[off:off + nout * nin].view(nout, nin)
        off += nout * nin
        bl = params[off:off + nout]
        off += nout
        z = h @ Wl.T + bl
        if l == 1 and "labels" in case and case["loss_kind"] != "classifier":
            K, lo = int(case["K"]), int(case["label_offset"])
            table = params[lo:lo + (K + 1) * nout].view(K + 1, nout)
            z = z + table[case["labels"].long()]
        if l < L:
            h = h + act(z) if res[l] else act(z)
        else:
            return z
    raise AssertionError("no output layer")


def energy(case, params, x, c):
    """The energy MLP's E(x, c): the network above with its single output."""
    return mlp(case, params, x, c)[:, 0]


def net(case, params, x, c):
    """The network's output F(x, c) as a score model: the MLP's, or for an energy model
    -grad_x E(x, c), kept in the graph (create_graph) so that a loss on it is differentiated
    again with respect to the parameters (double backward)."""
    if not case.get("energy"):
        return mlp(case, params, x, c)
    xr = x if x.requires_grad else x.detach().requires_grad_(True)
    (gx,) = torch.autograd.grad(energy(case, params, xr, c).sum(), xr, create_graph=True)
    return -gx


# ---- schedules (score_sde defaults) and parameterizations (sde.h table) -------------------
VE_MIN, VE_MAX = 0.01, 50.0
VP_B0, VP_B1 = 0.1, 20.0


def sched_coefs(kind, t):
    """alpha, sigma, g^2 as float64 tensors for the continuous kinds."""
    t = torch.as_tensor(t)
    if kind == "ve":
        sig = VE_MIN * (VE_MAX / VE_MIN) ** t
        return torch.ones_like(t), sig, sig ** 2 * 2 * math.log(VE_MAX / VE_MIN)
    if kind == "vp":
        log_a = -0.25 * t ** 2 * (VP_B1 - VP_B0) - 0.5 * t * VP_B0
        sig = torch.sqrt(-torch.expm1(2 * log_a))
        return torch.exp(log_a), sig, VP_B0 + t * (VP_B1 - VP_B0)
    raise ValueError(kind)


def lam(kind, t):
    al, sig, _ = sched_coefs(kind, t)
    return torch.log(al) - torch.log(sig)


def t_of_lambda(kind, target, lo=0.0, hi=1.0):
    """Bisection in float64 (lambda is decreasing in t)."""
    a = torch.full_like(target, lo)
    b = torch.full_like(target, hi)
    for _ in range(200):
        mid = 0.5 * (a + b)
        up = lam(kind, mid) > target
        a = torch.where(up, mid, a)
        b = torch.where(up, b, mid)
    return 0.5 * (a + b)


def output_coefs(output, cond, al, sig, t, sd=0.5):
    """a, k, in_scale, c of s = a F(in x, c) + k x."""
    one = torch.ones_like(sig)
    a, k, cin = one.clone(), torch.zeros_like(sig), one.clone()
    if output == 2:  # eps
        a = -1 / sig
    elif output == 5:  # EDM
        se = sig / al
        den = torch.sqrt(se ** 2 + sd ** 2)
        a = al * (se * sd / den) / sig ** 2
        k = (sd ** 2 / (se ** 2 + sd ** 2) - 1) / sig ** 2
        cin = 1 / (den * al)
    elif output == 6:  # score over sigma
        a = 1 / sig
    if cond == 0:
        cond = 4 if output == 5 else 1
    c = {1: t, 2: 999.0 * t, 3: sig / al, 4: torch.log(sig / al) / 4}[cond]
    return a, k, cin, c


def score_fn(case, params, output, cond, al, sig, t):
    a, k, cin, c = output_coefs(output, cond, al, sig, t)
    return lambda x: a[:, None] * net(case, params, cin[:, None] * x, c) + k[:, None] * x


def trace(s, x):
    """Exact divergence by one backward pass per coordinate (graph kept for the gradient)."""
    tr = torch.zeros(x.shape[0])
    for j in range(x.shape[1]):
        tr = tr + torch.autograd.grad(s[:, j].sum(), x, create_graph=True)[0][:, j]
    return tr


def torch_loss(case, params):
    n, d = int(case["n"]), int(case["dim"])
    x = case["x"].view(n, d)
    z = case["z"].view(n, d)
    kind, sched = case["loss_kind"], case["sched"]
    output, cond = int(case["output"]), int(case["cond"])
    reduce = int(case["reduce"])
    if reduce == 0:
        reduce = 2 if kind == "ddpm" else 1
    red = (lambda u: 0.5 * u.sum(1)) if reduce == 1 else (lambda u: u.mean(1))

    if kind in ("hyvarinen", "ssm", "ssm-vr"):
        if sched == "none":
            ones = torch.ones(n)
            s_of = lambda xx: net(case, params, xx, case["cond_value"] * ones)
        else:
            t = torch.full((n,), case["time"])
            al, sig, _ = sched_coefs(sched, t)
            s_of = score_fn(case, params, output, cond, al, sig, t)
        xr = x.clone().requires_grad_(True)
        s = s_of(xr)
        if kind == "hyvarinen":
            return (0.5 * (s ** 2).sum(1) + trace(s, xr)).mean()
        M = int(case["M"])
        v = case["v"].view(n, M, d)
        if int(case["probe"]) == 3:
            v = v * math.sqrt(d) / v.norm(dim=2, keepdim=True)
        tot = torch.zeros(n)
        for p in range(M):
            vp = v[:, p, :]
            vs = (s * vp).sum(1)
            gv = torch.autograd.grad(vs.sum(), xr, create_graph=True)[0]
            tot = tot + (gv * vp).sum(1) + (0.5 * vs ** 2 if kind == "ssm" else 0)
        tot = tot / M
        if kind == "ssm-vr":
            tot = tot + 0.5 * (s ** 2).sum(1)
        return tot.mean()

    if kind == "dsm":
        sigma = case["sigma"]
        xt = (x + sigma * z).float().double()  # libscore feeds float32
        s = net(case, params, xt, case["cond_value"] * torch.ones(n))
        return red((s + z / sigma) ** 2).mean()

    if kind in ("ncsn", "ddpm"):
        idx = case["idx"].long()
        L = case["level_sigma"].numel()
        t = (idx.double() + 1) / L * case["T"]
        sig = case["level_sigma"][idx]
        al = case["level_alpha"][idx]
        xt = (al[:, None] * x + sig[:, None] * z).float().double()  # libscore feeds float32
        s = score_fn(case, params, output, cond, al, sig, t)(xt)
        if kind == "ncsn":
            return (sig ** case["anneal_power"] * red((s + z / sig[:, None]) ** 2)).mean()
        eps_hat = -sig[:, None] * s
        return red((eps_hat - z) ** 2).mean()

    if kind == "classifier":
        # cross-entropy of the noised rows x_t = alpha x + sigma z at t = t_eps + u (T - t_eps),
        # the network fed x_t and t itself
        te, T = 1e-5, case["T"]
        t = (te + case["u"] * (T - te)).clamp(max=T)
        al, sig, _ = sched_coefs(sched, t)
        xt = (al[:, None] * x + sig[:, None] * z).float().double()
        logp = torch.log_softmax(mlp(case, params, xt, t), dim=1)
        return -logp[torch.arange(n), case["labels"].long()].mean()

    if kind == "sde":
        te, T = 1e-5, case["T"]
        u = case["u"]
        if int(case["importance"]):
            l_T, l_e = lam(sched, torch.tensor(T)), lam(sched, torch.tensor(te))
            t = t_of_lambda(sched, l_e - u * (l_e - l_T)).clamp(te, T)
            w = torch.full((n,), float(2 * (l_e - l_T) / (T - te)))
        else:
            t = te + u * (T - te)
            w = None
        al, sig, g2 = sched_coefs(sched, t)
        xt = (al[:, None] * x + sig[:, None] * z).float().double()
        s = score_fn(case, params, output, cond, al, sig, t)(xt)
        if w is not None:
            return (w * red((sig[:, None] * s + z) ** 2)).mean()
        if int(case["weighting"]) == 2:
            return (g2 * red((s + z / sig[:, None]) ** 2)).mean()
        return red((sig[:, None] * s + z) ** 2).mean()
    raise ValueError(kind)


def main():
    out = subprocess.run([sys.argv[1]], check=True, capture_output=True, text=True).stdout
    failed = 0
    for case in parse(out):
        params = case["params"].clone().requires_grad_(True)
        L = torch_loss(case, params)
        (g,) = torch.autograd.grad(L, params)
        lv = float(L)
        verr = abs(lv - case["loss"]) / max(abs(lv), 1e-30)
        gerr = float((g - case["grad"]).abs().max() / g.abs().max())
        ok = verr <= TOL and gerr <= TOL
        extra = ""
        if "gx" in case:
            # the classifier's input gradient grad_x log p(y | x, t) and log p at the data rows
            n, d = int(case["n"]), int(case["dim"])
            xr = case["x"].view(n, d).clone().requires_grad_(True)
            lp = torch.log_softmax(mlp(case, case["params"], xr, case["gx_t"]), dim=1)
            lp = lp[torch.arange(n), case["labels"].long()]
            (gx,) = torch.autograd.grad(lp.sum(), xr)
            xerr = float((gx.flatten() - case["gx"]).abs().max() / gx.abs().max())
            perr = float((lp.detach() - case["logp"]).abs().max() / lp.abs().max())
            ok = ok and xerr <= TOL and perr <= TOL
            extra = f"; grad_x max rel {xerr:.1e}, log p max rel {perr:.1e}"
        if "E" in case:
            # the energy model's E(x, c) and its score -grad_x E at the data rows, c = u
            n, d = int(case["n"]), int(case["dim"])
            xr = case["x"].view(n, d).clone().requires_grad_(True)
            e = energy(case, case["params"], xr, case["u"])
            (gx,) = torch.autograd.grad(e.sum(), xr)
            eerr = float((e.detach() - case["E"]).abs().max() / e.detach().abs().max())
            serr = float((-gx.flatten() - case["score"]).abs().max() / gx.abs().max())
            ok = ok and eerr <= TOL and serr <= TOL
            extra = f"; energy max rel {eerr:.1e}, score max rel {serr:.1e}"
        failed += not ok
        print(f"{case['name']:26s} loss torch {lv: .10g} libscore {case['loss']: .10g} "
              f"rel {verr:.1e}; gradient max rel {gerr:.1e}{extra} {'ok' if ok else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
