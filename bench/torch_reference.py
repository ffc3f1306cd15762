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

    def __init__(self, dim, hidden, depth=3, embed_dim=32, scale=16.0):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("W", torch.randn(embed_dim // 2, generator=g) * scale)
        layers = [torch.nn.Linear(dim + embed_dim, hidden)]
        layers += [torch.nn.Linear(hidden, hidden) for _ in range(depth - 1)]
        self.hidden = torch.nn.ModuleList(layers)
        self.out = torch.nn.Linear(hidden, dim)

    def forward(self, x, c):
        proj = 2 * math.pi * c[:, None] * self.W[None, :]
        h = torch.cat([x, torch.sin(proj), torch.cos(proj)], dim=1)
        h = torch.nn.functional.silu(self.hidden[0](h))
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
        return self


SIGMA_MIN, SIGMA_MAX = 0.01, 50.0


def ve_sigma(t):
    return SIGMA_MIN * (SIGMA_MAX / SIGMA_MIN) ** t


def dsm_step(model, opt, x):
    # continuous VE DSM with sigma^2 weighting (score output, conditioning c = t)
    t = torch.rand(x.shape[0]) * (1 - 1e-5) + 1e-5
    z = torch.randn_like(x)
    sig = ve_sigma(t)[:, None]
    s = model(x + sig * z, t)
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


def dpmpp_2m_sample(model, n, dim, steps):
    # DPM-Solver++(2M) in sigma space on a VE model (score output -> D = x + sigma^2 s)
    t_grid = torch.linspace(1.0, 1e-5, steps + 1, dtype=torch.float64)
    sig = [ve_sigma(float(t)) for t in t_grid]
    x = torch.randn(n, dim) * sig[0]
    old = None
    for i in range(steps):
        tv = torch.full((n,), float(t_grid[i]))
        D = x + sig[i] ** 2 * model(x, tv)
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
    }
    for name, (dim, hidden, batch, step) in train.items():
        if only and name not in only:
            continue
        model = FourierMLP(dim, hidden)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        x = torch.randn(batch, dim)
        n_inner = max(1, inner // 10) if name.startswith("hyv_d64") else inner

        def run():
            for _ in range(n_inner):
                step(model, opt, x)

        times = [t / n_inner for t in timed(run, a.reps, 1)]
        emit(name, a.threads, times, "step", 1)

    for name, fn, steps in (("pc_ve_d2_h128_n10000_s100", pc_sample, 100),
                            ("dpmpp2m_ve_d2_h128_n10000_s20", dpmpp_2m_sample, 20)):
        if only and name not in only:
            continue
        model = FourierMLP(2, 128)
        if a.sampling_model:
            model.load_libscore(a.sampling_model)
        n = a.samples or (2000 if a.quick else 10000)
        out = []

        def sample():
            with no_grad():
                out.append(fn(model, n, 2, steps))

        times = timed(sample, max(3, a.reps // 2) if not a.quick else 1, 1)
        x = out[-1].double()
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
