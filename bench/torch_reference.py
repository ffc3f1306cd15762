#!/usr/bin/env python3
"""PyTorch reference for libscore's benchmark workloads (same shapes, float32, same threads).

Prints one JSON object per line:
  {"impl": "pytorch", "workload": "...", "threads": N, "median_s": ..., "min_s": ..., "max_s": ...,
   "unit": "step" | "run", "items_per_run": ..., "peak_rss_kb": ...}

usage: torch_reference.py --threads N [--reps R] [--only W1,W2] [--quick] [--sampling-model PATH]
                          [--samples N] [--cpu-time] [--tuned]
Exit code 77 when torch is not importable (the runner reports "skipped").

The sampling workloads load the libscore model file given by --sampling-model (the runner
makes it with `score-bench --make-sampling-model`), so that both implementations sample the
same score field; without it they use a randomly initialised network (whose VE reverse
diffusion overflows, which does not change the amount of work but makes the samples useless).

Differences from libscore that were fixed here (see bench/README.md): the Langevin corrector
uses the same noise draw for its step size and its update (score_sde's LangevinCorrector);
the last PC predictor step goes to sigma = 0 without noise (the denoised mean, libscore's
final step to t = 0); DPM-Solver++(2M) keeps second order on its last step (libscore lowers
the order only for runs of fewer than 10 steps).
"""
import argparse
import json
import math
import resource
import statistics
import struct
import sys
import time

try:
    import torch
except ImportError:  # pragma: no cover
    print("torch is not installed: PyTorch reference skipped", file=sys.stderr)
    sys.exit(77)


class FourierMLP(torch.nn.Module):
    """Same architecture as libscore's MLP: input [x ; Gaussian Fourier features of c],
    `depth` hidden layers of width `hidden` with SiLU, residual where widths match, linear out."""

    def __init__(self, dim, hidden, depth=3, embed_dim=32, scale=16.0, num_classes=0,
                 out_dim=None):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("W", torch.randn(embed_dim // 2, generator=g) * scale)
        layers = [torch.nn.Linear(dim + embed_dim, hidden)]
        layers += [torch.nn.Linear(hidden, hidden) for _ in range(depth - 1)]
        self.hidden = torch.nn.ModuleList(layers)
        self.out = torch.nn.Linear(hidden, dim if out_dim is None else out_dim)
        # label input (libscore's SCORE_MODEL_PARAM_NUM_CLASSES = K): a (K + 1) x hidden table,
        # row y added to the first hidden pre-activation; row K is the null label
        self.num_classes = num_classes
        self.label = torch.nn.Embedding(num_classes + 1, hidden) if num_classes else None

    def forward(self, x, c, y=None):
        proj = 2 * math.pi * c[:, None] * self.W[None, :]
        h = torch.cat([x, torch.sin(proj), torch.cos(proj)], dim=1)
        z = self.hidden[0](h)
        if self.label is not None:
            if y is None:
                y = torch.full((x.shape[0],), self.num_classes, dtype=torch.long)
            z = z + self.label(y)
        h = torch.nn.functional.silu(z)
        for lin in self.hidden[1:]:
            h = h + torch.nn.functional.silu(lin(h))
        return self.out(h)

    def load_libscore(self, path):
        """Copies the weights of a libscore MLP file (safetensors: layers.<i>.weight/bias,
        embed.W) into this network; the architecture must match."""
        with open(path, "rb") as f:
            data = f.read()
        (hlen,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + hlen].decode("utf-8"))
        header.pop("__metadata__", None)
        base = 8 + hlen

        def tensor(name):
            e = header[name]
            b, end = e["data_offsets"]
            vals = struct.unpack("<%df" % ((end - b) // 4), data[base + b:base + end])
            return torch.tensor(vals, dtype=torch.float32).reshape(e["shape"])

        layers = list(self.hidden) + [self.out]
        with torch.no_grad():
            for i, lin in enumerate(layers):
                lin.weight.copy_(tensor("layers.%d.weight" % i))
                lin.bias.copy_(tensor("layers.%d.bias" % i))
            self.W.copy_(tensor("embed.W"))
            if self.label is not None:
                self.label.weight.copy_(tensor("label_embedding.weight"))
        return self


class EnergyMLP(torch.nn.Module):
    """libscore's energy model (SCORE_MODEL_ENERGY): the same MLP with one output E(x, c); its
    score is -grad_x E, computed by autograd (create_graph for training: double backward)."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.net = FourierMLP(dim, hidden, out_dim=1)

    def forward(self, x, c):
        x = x.detach().requires_grad_(True)
        e = self.net(x, c).sum()
        (g,) = torch.autograd.grad(e, x, create_graph=True)  # training: double backward
        return -g


def _zero_(layer):
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()


class UNetRes(torch.nn.Module):
    """libscore's residual block (doc/unet.md): GN, SiLU, conv3x3, + Dense(e), GN, SiLU,
    conv3x3 (zero-initialised), skip (identity or 1x1 convolution), / sqrt(2)."""

    def __init__(self, ci, co, temb, groups):
        super().__init__()
        self.gn1 = torch.nn.GroupNorm(min(groups, ci), ci, eps=1e-6)
        self.conv1 = torch.nn.Conv2d(ci, co, 3, padding=1)
        self.dense = torch.nn.Linear(temb, co)
        self.gn2 = torch.nn.GroupNorm(min(groups, co), co, eps=1e-6)
        self.conv2 = torch.nn.Conv2d(co, co, 3, padding=1)
        _zero_(self.conv2)
        self.skip = torch.nn.Conv2d(ci, co, 1) if ci != co else None

    def forward(self, x, e):
        silu = torch.nn.functional.silu
        h = self.conv1(silu(self.gn1(x))) + self.dense(e)[:, :, None, None]
        h = self.conv2(silu(self.gn2(h)))
        return ((self.skip(x) if self.skip is not None else x) + h) * (1.0 / math.sqrt(2.0))


class UNetAttn(torch.nn.Module):
    """Single-head self-attention over the positions, q, k, v, out as 1x1 convolutions (out
    zero-initialised), (x + out) / sqrt(2)."""

    def __init__(self, c, groups):
        super().__init__()
        self.gn = torch.nn.GroupNorm(min(groups, c), c, eps=1e-6)
        self.q, self.k, self.v, self.o = (torch.nn.Conv2d(c, c, 1) for _ in range(4))
        _zero_(self.o)

    def forward(self, x):
        n, c, h, w = x.shape
        a = self.gn(x)
        q, k, v = (m(a).reshape(n, c, h * w) for m in (self.q, self.k, self.v))
        att = torch.softmax(torch.einsum("ncp,ncq->npq", q, k) / math.sqrt(c), dim=-1)
        o = torch.einsum("npq,ncq->ncp", att, v).reshape(n, c, h, w)
        return (x + self.o(o)) * (1.0 / math.sqrt(2.0))


class UNet(torch.nn.Module):
    """The architecture of libscore's SCORE_MODEL_UNET (doc/unet.md, "Architecture"): the
    same layers, widths and order, PyTorch's default initialisation (U(-1/sqrt(fan_in),
    1/sqrt(fan_in)), libscore's distribution) with the same layers zeroed. Rows are flattened
    images, as libscore's."""

    def __init__(self, channels=1, size=8, base=32, mults=(1, 2, 2), blocks=2, groups=8,
                 attention=True, embed_dim=32, scale=16.0):
        super().__init__()
        self.shape = (channels, size, size)
        temb = 4 * base
        g = torch.Generator().manual_seed(0)
        self.register_buffer("W", torch.randn(embed_dim // 2, generator=g) * scale)
        self.d0, self.d1 = torch.nn.Linear(embed_dim, temb), torch.nn.Linear(temb, temb)
        self.conv_in = torch.nn.Conv2d(channels, base * mults[0], 3, padding=1)
        ch, chans = base * mults[0], [base * mults[0]]
        self.down = torch.nn.ModuleList()
        for lvl, m in enumerate(mults):
            for _ in range(blocks):
                self.down.append(UNetRes(ch, base * m, temb, groups))
                ch = base * m
                chans.append(ch)
            if lvl + 1 < len(mults):
                self.down.append(torch.nn.AvgPool2d(2))
                chans.append(ch)
        self.mid1 = UNetRes(ch, ch, temb, groups)
        self.attn = UNetAttn(ch, groups) if attention else None
        self.mid2 = UNetRes(ch, ch, temb, groups)
        self.up = torch.nn.ModuleList()
        for lvl in reversed(range(len(mults))):
            for _ in range(blocks + 1):
                self.up.append(UNetRes(ch + chans.pop(), base * mults[lvl], temb, groups))
                ch = base * mults[lvl]
            if lvl > 0:
                self.up.append(torch.nn.Upsample(scale_factor=2, mode="nearest"))
                self.up.append(torch.nn.Conv2d(ch, ch, 3, padding=1))
        self.gn_out = torch.nn.GroupNorm(min(groups, ch), ch, eps=1e-6)
        self.conv_out = torch.nn.Conv2d(ch, channels, 3, padding=1)
        _zero_(self.conv_out)

    def forward(self, x, c):
        silu = torch.nn.functional.silu
        proj = 2 * math.pi * c[:, None] * self.W[None, :]
        f = torch.cat([torch.sin(proj), torch.cos(proj)], dim=1)
        e = silu(self.d1(silu(self.d0(f))))
        h = self.conv_in(x.reshape(x.shape[0], *self.shape))
        skips = [h]
        for m in self.down:
            h = m(h, e) if isinstance(m, UNetRes) else m(h)
            skips.append(h)
        h = self.mid2(self.attn(self.mid1(h, e)) if self.attn is not None
                      else self.mid1(h, e), e)
        for m in self.up:
            if isinstance(m, UNetRes):
                h = m(torch.cat([h, skips.pop()], dim=1), e)
            else:
                h = m(h)
        return self.conv_out(silu(self.gn_out(h))).reshape(x.shape[0], -1)


SIGMA_MIN, SIGMA_MAX = 0.01, 50.0


def ve_sigma(t):
    return SIGMA_MIN * (SIGMA_MAX / SIGMA_MIN) ** t


def dsm_step(model, opt, x, y=None):
    # continuous VE DSM with sigma^2 weighting (score output, conditioning c = t); with labels
    # y: label dropout p_uncond = 0.1 to the null label (libscore's trainer default)
    t = torch.rand(x.shape[0]) * (1 - 1e-5) + 1e-5
    z = torch.randn_like(x)
    sig = ve_sigma(t)[:, None]
    if y is None:
        s = model(x + sig * z, t)
    else:
        drop = torch.rand(x.shape[0]) < 0.1
        s = model(x + sig * z, t, torch.where(drop, torch.full_like(y, model.num_classes), y))
    loss = ((sig * s + z) ** 2).sum(1).mul(0.5).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def hyvarinen_step(model, opt, x):
    x = x.clone().requires_grad_(True)
    c = torch.zeros(x.shape[0])
    s = model(x, c)
    tr = torch.zeros(x.shape[0])
    for j in range(x.shape[1]):  # d backward passes for the exact trace
        g = torch.autograd.grad(s[:, j].sum(), x, create_graph=True)[0]
        tr = tr + g[:, j]
    loss = (0.5 * (s ** 2).sum(1) + tr).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def ssm_step(model, opt, x):
    x = x.clone().requires_grad_(True)
    c = torch.zeros(x.shape[0])
    v = torch.randint(0, 2, x.shape).float() * 2 - 1
    s = model(x, c)
    vs = (s * v).sum()
    gv = torch.autograd.grad(vs, x, create_graph=True)[0]
    loss = ((gv * v).sum(1) + 0.5 * ((s * v).sum(1)) ** 2).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def cdsm_step(model, opt, x):
    # class-conditional DSM: row i has class i mod K (as score-bench)
    y = torch.arange(x.shape[0]) % model.num_classes
    return dsm_step(model, opt, x, y)


def pc_sample(model, n, dim, steps, snr=0.16):
    # VE reverse-diffusion predictor + one Langevin corrector per level (score_sde order)
    t_grid = torch.linspace(1.0, 1e-5, steps, dtype=torch.float64)
    x = torch.randn(n, dim) * SIGMA_MAX
    for i in range(steps):
        t = float(t_grid[i])
        tv = torch.full((n,), t)
        s = model(x, tv)
        z = torch.randn_like(x)
        gn = torch.linalg.norm(s, dim=1).mean()
        zn = torch.linalg.norm(z, dim=1).mean()
        eps = 2 * (snr * zn / gn) ** 2
        x = x + eps * s + torch.sqrt(2 * eps) * z
        sig = ve_sigma(t)
        sig_prev = ve_sigma(float(t_grid[i + 1])) if i + 1 < steps else 0.0
        G2 = sig ** 2 - sig_prev ** 2
        s = model(x, tv)
        x = x + G2 * s
        if i + 1 < steps:  # the last step returns the denoised mean
            x = x + math.sqrt(G2) * torch.randn_like(x)
    return x


GUIDANCE_W, GUIDED_LABEL = 2.0, 3  # as score-bench


def dpmpp_2m_sample(model, n, dim, steps, label=None, guidance=0.0):
    # DPM-Solver++(2M) in sigma space on a VE model (score output -> D = x + sigma^2 s); with a
    # label: the conditional model for that class; with guidance w != 0 classifier-free
    # guidance on the same network, s = (1 + w) s(x, y) - w s(x, null), both halves as one
    # batch of 2n rows
    t_grid = torch.linspace(1.0, 1e-5, steps + 1, dtype=torch.float64)
    sig = [ve_sigma(float(t)) for t in t_grid]
    x = torch.randn(n, dim) * sig[0]
    old = None
    if label is not None:
        yc = torch.full((n,), label, dtype=torch.long)
        y2 = torch.cat([yc, torch.full((n,), model.num_classes, dtype=torch.long)])
    for i in range(steps):
        tv = torch.full((n,), float(t_grid[i]))
        if label is None:
            s = model(x, tv)
        elif guidance == 0.0:
            s = model(x, tv, yc)
        else:
            s2 = model(torch.cat([x, x]), torch.cat([tv, tv]), y2)
            s = (1 + guidance) * s2[:n] - guidance * s2[n:]
        D = x + sig[i] ** 2 * s
        h = math.log(sig[i]) - math.log(sig[i + 1])
        if old is None:
            Dt = D
        else:
            h_last = math.log(sig[i - 1]) - math.log(sig[i])
            r = h_last / h
            Dt = (1 + 1 / (2 * r)) * D - (1 / (2 * r)) * old
        x = (sig[i + 1] / sig[i]) * x - math.expm1(-h) * Dt
        old = D
    return x


LAST_CPU_UTIL = [0.0]
IMPL = ["pytorch"]  # "pytorch-tuned" with --tuned
CLOCK = [time.perf_counter]  # --cpu-time: time.process_time (profiling on a shared machine)


def timed(fn, reps, warmup):
    for _ in range(warmup):
        fn()
    times = []
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(reps):
        t0 = CLOCK[0]()
        fn()
        times.append(CLOCK[0]() - t0)
    # CPU seconds per wall second of the timed repetitions (as score-bench's cpu_util)
    LAST_CPU_UTIL[0] = (time.process_time() - c0) / max(time.perf_counter() - w0, 1e-12)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", default="")
    ap.add_argument("--quick", action="store_true", help="fewer steps per repetition")
    ap.add_argument("--sampling-model", default="", help="libscore model file for sampling")
    ap.add_argument("--samples", type=int, default=0,
                    help="samples per sampling run (default 10000; 2000 with --quick)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time by process CPU time (meaningful at one thread only)")
    ap.add_argument("--tuned", action="store_true",
                    help="the configuration a performance-aware user runs: sampling under "
                         "torch.inference_mode() instead of no_grad, denormals flushed to zero; "
                         "records are named 'pytorch-tuned' (the runner adds the allocator "
                         "tuning through the environment)")
    a = ap.parse_args()
    if a.cpu_time:
        CLOCK[0] = time.process_time
    IMPL[0] = "pytorch-tuned" if a.tuned else "pytorch"
    if a.tuned:
        torch.set_flush_denormal(True)
    no_grad = torch.inference_mode if a.tuned else torch.no_grad
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    only = set(a.only.split(",")) if a.only else None
    inner = 5 if a.quick else 20  # training steps per timed repetition

    train = {
        "dsm_d2_h128_b256": (2, 128, 256, dsm_step),
        "dsm_d64_h512_b1024": (64, 512, 1024, dsm_step),
        "hyv_d2_h128_b256": (2, 128, 256, hyvarinen_step),
        "hyv_d64_h256_b256": (64, 256, 256, hyvarinen_step),
        "ssm_d64_h256_b256": (64, 256, 256, ssm_step),
        "cdsm_d64_h512_b1024_k10": (64, 512, 1024, cdsm_step),
        "edsm_d64_h512_b1024": (64, 512, 1024, dsm_step),
        "unet_dsm_8x8_w32_b128": (64, 32, 128, dsm_step),
    }
    for name, (dim, hidden, batch, step) in train.items():
        if only and name not in only:
            continue
        if name.startswith("cdsm"):
            model = FourierMLP(dim, hidden, num_classes=10)
        elif name.startswith("edsm"):
            model = EnergyMLP(dim, hidden)
        elif name.startswith("unet"):
            model = UNet(base=hidden)
        else:
            model = FourierMLP(dim, hidden)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        x = torch.randn(batch, dim)
        n_inner = max(1, inner // 10) if name.startswith("hyv_d64") else inner

        def run():
            for _ in range(n_inner):
                step(model, opt, x)

        times = [t / n_inner for t in timed(run, a.reps, 1)]
        emit(name, a.threads, times, "step", 1)

    sampling = (("pc_ve_d2_h128_n10000_s100", pc_sample, 100, {}),
                ("dpmpp2m_ve_d2_h128_n10000_s20", dpmpp_2m_sample, 20, {}),
                ("dpmpp2m_cond_ve_d2_h128_n10000_s20", dpmpp_2m_sample, 20,
                 {"label": GUIDED_LABEL}),
                ("dpmpp2m_cfg_ve_d2_h128_n10000_s20", dpmpp_2m_sample, 20,
                 {"label": GUIDED_LABEL, "guidance": GUIDANCE_W}),
                ("unet_dpmpp2m_8x8_w32_n1000_s20", dpmpp_2m_sample, 20, {}))
    for name, fn, steps, kw in sampling:
        if only and name not in only:
            continue
        cond = "label" in kw  # the conditional sampling model: 8 classes, file + ".cond"
        if name.startswith("unet"):
            # a freshly initialised U-Net (score-bench: the same distribution)
            model, dim = UNet(base=32), 64
            n = a.samples or (100 if a.quick else 1000)
        else:
            model, dim = FourierMLP(2, 128, num_classes=8 if cond else 0), 2
            if a.sampling_model:
                model.load_libscore(a.sampling_model + (".cond" if cond else ""))
            n = a.samples or (2000 if a.quick else 10000)
        out = []

        def sample():
            with no_grad():
                out.append(fn(model, n, dim, steps, **kw))

        times = timed(sample, max(3, a.reps // 2) if not a.quick else 1, 1)
        x = out[-1].double()[:, :2]  # the first two coordinates, as score-bench reports
        extra = {"nfe": 2 * steps if fn is pc_sample else steps,
                 "sample_mean": [round(v, 4) for v in x.mean(0).tolist()],
                 "sample_std": [round(v, 4) for v in x.std(0, unbiased=False).tolist()],
                 "sample_mean_radius": round(float(x.norm(dim=1).mean()), 4)}
        emit(name, a.threads, times, "run", n, extra)


def emit(name, threads, times, unit, items, extra=None):
    rec = {
        "impl": IMPL[0], "workload": name, "threads": threads,
        "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
        "unit": unit, "items_per_run": items,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "reps": len(times), "cpu_util": round(LAST_CPU_UTIL[0], 3),
        "times_s": [round(t, 9) for t in times],
    }
    rec.update(extra or {})
    print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
