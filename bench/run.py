#!/usr/bin/python3
"""Runs libscore's benchmark (score-bench) and the PyTorch reference (torch_reference.py) on the
same machine, at 1 and 2 threads, and prints libscore / PyTorch ratios, the fraction of the sgemm
roofline each achieves, the 2-thread speed-ups against the sgemm's and the peak memory of the
sampling processes, then checks the performance targets.

usage: bench/run.py [--build-dir DIR] [--quick] [--reps R] [--rounds K] [--threads 1,2]
                    [--json FILE] [--no-torch] [--no-tuned] [--retries K] [--only W1,W2]
                    [--coretype auto|none|NAME] [--stat median_s|min_s]
                    [--mpi | --mpi-only] [--mpi-ranks 1,2] [--mpi-batch B]
                    [--mpi-reduce-rows R] [--mpi-steps S] [--mpirun PATH]

Builds nothing: it expects DIR/bench/score-bench (default DIR: build-bench next to this
directory's parent, i.e. `meson setup build-bench --buildtype=release -Db_ndebug=true`).
Every process gets OPENBLAS_NUM_THREADS = OMP_NUM_THREADS = BLIS_NUM_THREADS = N; the PyTorch
reference also calls torch.set_num_threads(N). Sampling workloads run in their own processes so
that their peak resident memory (ru_maxrss) is theirs alone.

The reference is skipped, with a message, when /usr/bin/python3 cannot import torch.

--only W1,W2,... runs only these workloads (a name ending in '*' selects every workload
starting with it, e.g. --only 'unet_*'); the sgemm roofline always runs, for the %roof column.

MPI (--mpi: after the comparison; --mpi-only: alone): when the build has MPI
(DIR/bench/score-bench-mpi exists), the data-parallel training step of mpi-scaling.c runs under
mpirun with each rank count of --mpi-ranks (one BLAS thread per rank): strong scaling (the same
global batch for every rank count) and weak scaling (--mpi-batch rows per rank), and the runner
prints the step times, the all-gather's share, the speed-up and the parallel efficiency against
one rank, as in doc/scaling.md. Without MPI in the build the part is skipped with a message
(--mpi-only then exits with status 2).

PyTorch runs in two configurations: as installed ("pytorch"), and tuned as a performance-aware
user would run it ("pytorch-tuned": glibc's malloc kept from returning large blocks to the
kernel through GLIBC_TUNABLES, or with --tuned-allocator jemalloc Debian's libjemalloc2
preloaded without page decay; sampling under torch.inference_mode(), denormals flushed to
zero). Ratios are taken against the fastest of the two for each workload and thread count,
where "thread count" means the CPUs given: the 2-thread ratio compares with PyTorch's 1-thread
time when PyTorch runs faster on one thread than on two (a user would set one thread then);
the table marks such a reference "@1T" in the targets.

Contention: before and after every process, a short sgemm probe measures the machine. A process
whose probes ran below 85% of the best probe seen at that thread count, or that got less than
80% of a CPU per thread, or during which other programs used more than 0.2 CPU on average (the
machine's busy time in /proc/stat minus the CPU time of the measured process), or the
hypervisor stole more than 0.1 CPU, is marked contended and run again (--retries); its
repetitions are used only if no clean run of the same (implementation, workload, threads)
exists. (The load average is not a criterion: it still counts the runner's own previous
processes for a minute, so at 2 threads on 2 CPUs it exceeds the CPU count on a quiet
machine.) The raw records are appended to the JSON file as each process ends, so an
interrupted run keeps what it measured. The table reports, per row, the spread
of the pooled repetitions, (max - min) / median, and the run ends with the count of contended
processes.
"""
import argparse
import glob
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

TRAIN = ["dsm_d2_h128_b256", "dsm_d64_h512_b1024", "hyv_d2_h128_b256", "hyv_d64_h256_b256",
         "ssm_d64_h256_b256", "cdsm_d64_h512_b1024_k10", "edsm_d64_h512_b1024"]
SAMPLE = ["pc_ve_d2_h128_n10000_s100", "dpmpp2m_ve_d2_h128_n10000_s20",
          "dpmpp2m_cond_ve_d2_h128_n10000_s20", "dpmpp2m_cfg_ve_d2_h128_n10000_s20"]
# classifier-free guidance on one network: the guided run against the unguided conditional one
# (same network, same class, same NFE); target <= 2.05x
# the image score network (SCORE_MODEL_UNET, the 8x8 digits network without labels): a DSM
# training step on 128 images and DPM-Solver++(2M) sampling of 1000 images: held to the
# 1.5x target like every workload (and the sampling to the RSS target), not to the roofline
# and scaling targets of the large MLP workloads
UNET_TRAIN = ["unet_dsm_8x8_w32_b128"]
UNET_SAMPLE = ["unet_dpmpp2m_8x8_w32_n1000_s20"]
CFG_PAIR = ("dpmpp2m_cfg_ve_d2_h128_n10000_s20", "dpmpp2m_cond_ve_d2_h128_n10000_s20")
CFG_TARGET = 2.05
ROOF = "sgemm_2048"
LABEL = {  # issue #8 numbering
    "dsm_d2_h128_b256": "1 DSM d2 h128 b256",
    "dsm_d64_h512_b1024": "2 DSM d64 h512 b1024",
    "hyv_d2_h128_b256": "3 Hyv d2 h128 b256",
    "hyv_d64_h256_b256": "4 Hyv d64 h256 b256",
    "ssm_d64_h256_b256": "5 SSM d64 h256 b256",
    "pc_ve_d2_h128_n10000_s100": "6 PC VE 100 steps",
    "dpmpp2m_ve_d2_h128_n10000_s20": "7 DPM++(2M) 20 steps",
    "cdsm_d64_h512_b1024_k10": "9 cond DSM d64 K10",
    "edsm_d64_h512_b1024": "10 energy DSM d64",
    "dpmpp2m_cond_ve_d2_h128_n10000_s20": "11 DPM++ cond y",
    "dpmpp2m_cfg_ve_d2_h128_n10000_s20": "12 DPM++ CFG w=2",
    "unet_dsm_8x8_w32_b128": "U-Net DSM 8x8 b128",
    "unet_dpmpp2m_8x8_w32_n1000_s20": "U-Net DPM++ 20 n1000",
}
# targets (performance issue, round 3): every workload >= 1.5x the faster PyTorch configuration;
# these >= 85% of the sgemm roofline at 1 thread; SCALING 2T/1T >= 90% of sgemm's own
ROOF_TARGET = {"dsm_d64_h512_b1024", "hyv_d64_h256_b256", "ssm_d64_h256_b256"} | set(SAMPLE)
SCALING = ["dsm_d64_h512_b1024"] + SAMPLE
GENERIC_CORES = {"Prescott", "Core2", "Katmai", "Penryn", "Dunnington", "Nehalem", "Atom",
                 "Generic", "Barcelona", "Opteron", "Athlon"}


def selected(only, name):
    """--only: names, or prefixes ending in '*' (None: everything)."""
    if not only:
        return True
    for w in only.split(","):
        if w == name or (w.endswith("*") and name.startswith(w[:-1])):
            return True
    return False


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_jsonl(cmd, env, timeout, quiet=False):
    """Runs cmd, returns (records, returncode, stderr)."""
    t0 = time.time()
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout)
    recs = []
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass
    if not quiet:
        log("  %-60s %5.1f s%s" % (" ".join(os.path.basename(c) if i == 0 else c
                                             for i, c in enumerate(cmd[:6]))[:60],
                                   time.time() - t0, "" if p.returncode == 0 else
                                   "  (exit %d)" % p.returncode))
    return recs, p.returncode, p.stderr


def tuned_env(env, allocator="glibc"):
    """The allocator tuning of the 'pytorch-tuned' configuration. glibc (default): malloc told
    to keep blocks up to 32 MiB off mmap and not to trim the heap, so PyTorch's fresh
    multi-megabyte tensors stop page-faulting on every step. jemalloc: Debian's libjemalloc2
    preloaded with the settings commonly advised for PyTorch on CPUs (no decay of dirty
    pages, background thread, large allocations kept in their own extents); preloaded
    without them it returned pages to the kernel after every step and ran PyTorch 2-3.6x
    slower here, and even with them the Hyvarinen d64 step was 3.6x slower than under the glibc
    tunables. Returns (env, description)."""
    e = dict(env)
    if allocator == "jemalloc":
        jem = sorted(glob.glob("/usr/lib/*/libjemalloc.so.2"))
        if jem:
            e["LD_PRELOAD"] = (jem[0] + " " + e.get("LD_PRELOAD", "")).strip()
            e["MALLOC_CONF"] = ("oversize_threshold:1,background_thread:true,"
                                "metadata_thp:auto,dirty_decay_ms:-1,muzzy_decay_ms:-1")
            return e, "jemalloc preloaded (%s), no decay" % jem[0]
        log("libjemalloc2 is not installed: the tuned PyTorch uses the glibc tunables")
    e["GLIBC_TUNABLES"] = ("glibc.malloc.mmap_threshold=33554432:"
                           "glibc.malloc.trim_threshold=1073741824:"
                           "glibc.malloc.top_pad=67108864")
    return e, "glibc tunables (mmap_threshold 32 MiB, no trimming)"


class Probe:
    """A short sgemm (the roofline workload, one repetition) run between processes: how fast
    the machine is right now, at a thread count."""

    def __init__(self, bench, coretype):
        self.bench, self.coretype, self.best = bench, coretype, {}

    def measure(self, n):
        r, rc, _ = run_jsonl([self.bench, "--threads", str(n), "--only", ROOF, "--reps", "1"],
                             thread_env(n, self.coretype), 300, quiet=True)
        for x in r:
            if x.get("workload") == ROOF and x.get("min_s"):
                gf = x["flops_per_unit"] / x["min_s"] * 1e-9
                self.best[n] = max(self.best.get(n, 0.0), gf)
                return gf
        return None

    def contention(self, n, before, after, others, recs):
        """Why a process's timings are suspect ('' = clean). others: (CPUs used by other
        programs, CPUs stolen by the hypervisor), averages over the process's run."""
        why = []
        if others is not None:
            if others[0] > 0.2:
                why.append("other programs used %.2f CPU" % others[0])
            if others[1] > 0.1:
                why.append("%.2f CPU stolen" % others[1])
        best = self.best.get(n)
        for name, gf in (("before", before), ("after", after)):
            if gf is not None and best and gf < 0.85 * best:
                why.append("sgemm %s at %.0f%% of best" % (name, 100 * gf / best))
        if n == 1:
            for x in recs:
                u = x.get("cpu_util")
                if u is not None and 0 < u < 0.8:
                    why.append("%.2f CPU per thread" % u)
                    break
        return ", ".join(why)


def cpu_snapshot():
    """(wall time, busy CPU seconds of the whole machine, stolen CPU seconds, CPU seconds of
    this runner's finished children), or None where /proc/stat is unreadable."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    hz = float(os.sysconf("SC_CLK_TCK"))
    # user nice system idle iowait irq softirq steal (guest time is inside user)
    busy = (v[0] + v[1] + v[2] + v[5] + v[6]) / hz
    steal = (v[7] if len(v) > 7 else 0) / hz
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.time(), busy, steal, ru.ru_utime + ru.ru_stime


def other_cpu(s0, s1):
    """CPUs used by other programs and stolen by the hypervisor between two snapshots (the
    runner's own children, i.e. the measured process, are subtracted)."""
    if s0 is None or s1 is None or s1[0] - s0[0] <= 0:
        return None
    wall = s1[0] - s0[0]
    others = (s1[1] - s0[1]) - (s1[3] - s0[3])
    return max(others, 0.0) / wall, (s1[2] - s0[2]) / wall


# OpenBLAS kernel families (OPENBLAS_CORETYPE names, lower case) below AVX-512, with the
# matching caps of oneDNN (ONEDNN_MAX_CPU_ISA) and of ATen (ATEN_CPU_CAPABILITY); AVX-512
# families (SkylakeX, Cooperlake, SapphireRapids) need no cap.
CORE_ISA = {
    "haswell": ("AVX2", "avx2"), "zen": ("AVX2", "avx2"),
    "sandybridge": ("AVX", "default"), "bulldozer": ("AVX", "default"),
    "piledriver": ("AVX", "default"), "steamroller": ("AVX", "default"),
    "excavator": ("AVX", "default"),
    "nehalem": ("SSE41", "default"), "penryn": ("SSE41", "default"),
    "core2": ("SSE41", "default"), "prescott": ("SSE41", "default"),
    "atom": ("SSE41", "default"), "katmai": ("SSE41", "default"),
}


def isa_of_core(coretype):
    """(oneDNN cap, ATen cap) for a forced OpenBLAS kernel family, or None (no cap)."""
    return CORE_ISA.get(coretype.lower())


def thread_env(n, coretype):
    env = dict(os.environ)
    for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "BLIS_NUM_THREADS", "GOTO_NUM_THREADS",
              "MKL_NUM_THREADS"):
        env[v] = str(n)
    env["SCORE_BENCH_REEXEC"] = "1"  # the environment is already right: no re-exec needed
    # OpenMP workers (PyTorch's intra-op pool) sleep instead of spinning when idle: with the
    # default (active) policy they spin while OpenBLAS's own threads compute and, on a 2-vCPU
    # machine, made PyTorch 10-30x slower at 2 threads (see bench/README.md).
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    for v in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"):
        env.pop(v, None)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
        # OPENBLAS_CORETYPE constrains OpenBLAS only: PyTorch's own kernels (ATen's vectorised
        # loops, oneDNN's convolutions) would still run AVX-512 code on an AVX-512 machine, so
        # a run with an older kernel family caps them at the same instruction set
        isa = isa_of_core(coretype)
        if isa is not None:
            env["ONEDNN_MAX_CPU_ISA"] = isa[0]
            env["ATEN_CPU_CAPABILITY"] = isa[1]
    else:
        env.pop("OPENBLAS_CORETYPE", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def openblas_core(bench, coretype):
    """The kernel family OpenBLAS selects (OPENBLAS_VERBOSE=2 prints 'Core: X'), or ''."""
    env = thread_env(1, coretype)
    env["OPENBLAS_VERBOSE"] = "2"
    try:
        p = subprocess.run([bench, "--list"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    m = re.search(r"Core:\s*(\S+)", p.stdout)
    return m.group(1) if m else ""


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def choose_coretype(bench, arg):
    """auto: keep OpenBLAS's choice unless it fell back to a generic kernel on a CPU with
    AVX-512 / AVX2 (OpenBLAS 0.3.21 does not know recent Xeons and runs them as 'Prescott',
    about 6x below the machine's sgemm speed); then force the matching family for *both*
    implementations (they load the same libopenblas)."""
    if arg == "none":
        return "", openblas_core(bench, "")
    if arg != "auto":
        return arg, openblas_core(bench, arg)
    core = openblas_core(bench, "")
    if core in GENERIC_CORES:
        flags = cpu_flags()
        forced = "SkylakeX" if "avx512f" in flags else "Haswell" if "avx2" in flags else ""
        if forced:
            log("OpenBLAS detects this CPU as '%s' (a generic kernel); forcing "
                "OPENBLAS_CORETYPE=%s for both implementations (--coretype none keeps '%s')"
                % (core, forced, core))
            return forced, openblas_core(bench, forced)
    return "", core


def have_torch(py):
    try:
        p = subprocess.run([py, "-c", "import torch; print(torch.__version__)"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def fastest_reference(get, threads, workload, n, stat, fewer=True):
    """The fastest PyTorch record for `workload` on n CPUs: the default or the tuned
    configuration, and (fewer) at any measured thread count up to n, since a user whose
    PyTorch runs faster on fewer threads than CPUs sets fewer threads. get(impl, workload, t)
    returns a record or None; threads: the measured thread counts. None without a record."""
    ms = [m for m in threads if m <= n] if fewer else [n]
    c = [x for m in ms for x in (get("pytorch", workload, m), get("pytorch-tuned", workload, m))
         if x]
    return min(c, key=lambda x: x[stat] / x["items_per_run"]) if c else None


def pool(recs):
    """Merges the records of the same (impl, workload, threads) from several rounds: their
    repetitions are pooled and the statistics recomputed; peak RSS is the largest. Records of
    contended processes are left out when a clean one of the same key exists; 'spread' is
    (max - min) / median of the pooled repetitions."""
    clean = {(x.get("impl"), x.get("workload"), x.get("threads")) for x in recs
             if "times_s" in x and not x.get("contended")}
    recs = [x for x in recs if not (x.get("contended") and
                                    (x.get("impl"), x.get("workload"), x.get("threads")) in clean)]
    out, index = [], {}
    for x in recs:
        if "error" in x or "times_s" not in x:
            out.append(x)
            continue
        key = (x.get("impl"), x.get("workload"), x.get("threads"))
        if key not in index:
            index[key] = dict(x)
            out.append(index[key])
            continue
        y = index[key]
        y["times_s"] = y["times_s"] + x["times_s"]
        y["peak_rss_kb"] = max(y["peak_rss_kb"], x["peak_rss_kb"])
        y["cpu_util"] = min(y.get("cpu_util", 0), x.get("cpu_util", 0))
    for y in index.values():
        t = sorted(y["times_s"])
        med = statistics.median(t)
        y.update(reps=len(t), median_s=med, min_s=t[0], max_s=t[-1],
                 mad_s=statistics.median([abs(v - med) for v in t]),
                 spread=(t[-1] - t[0]) / med if med > 0 else None)
        y.pop("round", None)
    return out


def fmt_time(s):
    if s is None:
        return "-"
    if s >= 1.0:
        return "%.2f s" % s
    return "%.2f ms" % (s * 1e3)


def fmt_thr(rec, stat):
    if rec is None:
        return "-"
    t = rec[stat]
    if rec["unit"] == "run":
        return "%.0f samp/s" % (rec["items_per_run"] / t)
    return "%.1f step/s" % (1.0 / t)


def mpi_scaling(recs):
    """Speed-up and efficiency of each MPI record (strong: T(1) / T(N) at the same global
    batch; weak: N T(1) / T(N), N times the rows), in place. The strong and the weak one-rank
    runs are the same command (one rank, the same rows): T(1) is the faster of their medians,
    so that one noisy baseline does not inflate every speed-up of its kind."""
    ones = [x["step_median_s"] for x in recs if x["ranks"] == 1 and x["step_median_s"] > 0]
    t1 = min(ones) if ones else None
    for x in recs:
        n, t = x["ranks"], x["step_median_s"]
        sp = eff = None
        if t1 and t > 0:
            sp = t1 / t * (n if x["scaling"] == "weak" else 1)
            eff = sp / n
        x["speedup"], x["efficiency"] = sp, eff
    return t1


def mpi_unsteady(recs, limit=1.25):
    """'' or why an MPI run's steps look contended: its median step more than `limit` times
    its best one (the steps of one run do the same work)."""
    for x in recs:
        med, best = x.get("step_median_s"), x.get("step_min_s")
        if med and best and med > limit * best:
            return "median step %.2fx its best" % (med / best)
    return ""


def run_mpi(a, probe=None, coretype=""):
    """The MPI workload (score-bench-mpi) under mpirun: strong and weak scaling over
    --mpi-ranks, with OpenBLAS's kernel family `coretype` (as the comparison's: the ranks'
    weight gradients run on OpenBLAS). A run is repeated (--retries) when the sgemm probe
    before or after it (at as many threads as ranks), the other programs' CPU time or the
    spread of its steps says the machine was contended. Returns (records, table lines), or
    None when the build has no MPI."""
    exe = os.path.join(a.build_dir, "bench", "score-bench-mpi")
    if not os.access(exe, os.X_OK):
        log("MPI workload skipped: %s not found (configure the build with -Dmpi=enabled and "
            "-Dbench=true)" % exe)
        return None
    mpirun = a.mpirun or shutil.which("mpirun")
    if not mpirun:
        log("MPI workload skipped: mpirun not found (Debian: openmpi-bin)")
        return None
    ranks = [int(r) for r in a.mpi_ranks.split(",") if r]
    steps = a.mpi_steps if a.mpi_steps > 0 else (1 if a.quick else 5)
    env = dict(os.environ)
    for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "BLIS_NUM_THREADS"):
        env[v] = "1"
    exported = ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "BLIS_NUM_THREADS"]
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
        exported.append("OPENBLAS_CORETYPE")
    else:
        env.pop("OPENBLAS_CORETYPE", None)
    base = ["--oversubscribe"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        base.append("--allow-run-as-root")
    for v in exported:
        base += ["-x", v]
    recs = []
    for kind in ("strong", "weak"):
        for n in ranks:
            cmd = [mpirun, "-np", str(n)] + base + [exe, "--batch", str(a.mpi_batch), "--reduce-rows",
                          str(a.mpi_reduce_rows), "--steps", str(steps)]
            if kind == "weak":
                cmd.append("--per-rank")
            log("MPI %s scaling, %d rank%s" % (kind, n, "" if n == 1 else "s"))
            for attempt in range(a.retries + 1):
                before = probe.measure(n) if probe else None
                s0 = cpu_snapshot()
                r, rc, err = run_jsonl(cmd, env, 3600)
                others = other_cpu(s0, cpu_snapshot())
                after = probe.measure(n) if probe else None
                if rc != 0 or not r:
                    log("score-bench-mpi exited with %d:\n%s" % (rc, err[-2000:]))
                    break
                why = ", ".join(w for w in (
                    probe.contention(n, before, after, others, []) if probe else "",
                    "" if steps < 3 else mpi_unsteady(r)) if w)
                for x in r:
                    x.update({"impl": "libscore-mpi", "scaling": kind})
                    if why:
                        x["contended"] = why
                if not why or attempt == a.retries:
                    recs += r
                    break
                log("    contended (%s): running it again" % why)
    mpi_scaling(recs)
    lines = ["", "MPI data-parallel training step (dsm_d64_h512, score-bench-mpi, one BLAS "
             "thread per rank%s, %d timed steps after 2 warm-up)"
             % (", OpenBLAS core %s" % coretype if coretype else "", steps),
             "%-6s %5s %12s %11s %22s %18s %8s %6s" % ("run", "ranks", "global batch",
                                                    "REDUCE_ROWS", "step, median (min)",
                                                    "all-gather alone", "speed-up", "eff.")]
    for kind in ("strong", "weak"):
        for x in (x for x in recs if x["scaling"] == kind):
            n, t, sp, eff = x["ranks"], x["step_median_s"], x["speedup"], x["efficiency"]
            lines.append("%-6s %5d %12s %11d %22s %18s %8s %6s%s" % (
                kind, n, "%d" % x["global_batch"] if kind == "strong" or n == 1 else
                "%d (%d/rank)" % (x["global_batch"], x["global_batch"] // n),
                x["reduce_rows"], "%.3f s (%.3f)" % (t, x["step_min_s"]),
                "-" if n == 1 else "%.3f s" % x["allgather_s"],
                "-" if sp is None else "%.2fx" % sp,
                "-" if eff is None else "%.0f%%" % (100 * eff),
                " *" if x.get("contended") else ""))
    lines.append("speed-up: strong = T(1) / T(N) at the same global batch; weak = N T(1) / T(N) "
                 "(N times the rows); T(1) = the faster of the two one-rank runs (the same "
                 "command); eff. = speed-up / N; * = contended in every try")
    return recs, lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--quick", action="store_true", help="smoke run (< 1 min): fewer steps, "
                    "2000 samples, one timed repetition of the samplers")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions (after one warm-up)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=0,
                    help="times the whole set of processes runs, alternating which "
                         "implementation goes first; repetitions are pooled (default 3, "
                         "--quick 1)")
    ap.add_argument("--json", default=None,
                    help="JSON lines output (raw records and the derived comparison; default "
                         "build-bench/bench-results.jsonl, with --mpi-only "
                         "build-bench/bench-results-mpi.jsonl: an MPI run alone does not "
                         "overwrite a full run's records); '' writes none")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    ap.add_argument("--tuned-allocator", choices=["glibc", "jemalloc"], default="glibc",
                    help="allocator of the tuned PyTorch: glibc malloc tunables (default) or "
                         "libjemalloc2 preloaded without page decay")
    ap.add_argument("--no-tuned", action="store_true",
                    help="run PyTorch only as installed (no tuned configuration)")
    ap.add_argument("--retries", type=int, default=2,
                    help="runs again a process that ran under contention, up to K times "
                         "(default 2)")
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter with torch")
    ap.add_argument("--coretype", default="auto",
                    help="OpenBLAS kernel family: auto (fix a generic fallback), none, or a name")
    ap.add_argument("--stat", default="median_s", choices=["median_s", "min_s"],
                    help="statistic of the repetitions used for ratios (default median)")
    ap.add_argument("--mpi", action="store_true",
                    help="also run the MPI workload (score-bench-mpi) when the build has MPI")
    ap.add_argument("--mpi-only", action="store_true", help="run only the MPI workload")
    ap.add_argument("--mpi-ranks", default="1,2", help="rank counts of the MPI workload")
    ap.add_argument("--mpi-batch", type=int, default=1024,
                    help="global batch (strong scaling) and rows per rank (weak scaling)")
    ap.add_argument("--mpi-reduce-rows", type=int, default=512,
                    help="SCORE_TRAINER_PARAM_REDUCE_ROWS of the MPI workload")
    ap.add_argument("--mpi-steps", type=int, default=0,
                    help="timed steps of the MPI workload (default 5, --quick 1)")
    ap.add_argument("--mpirun", default=None, help="the MPI launcher (default: mpirun on PATH)")
    ap.add_argument("--only", default="",
                    help="only these workloads (comma-separated; a trailing '*' matches a prefix); "
                         "the sgemm roofline always runs")
    a = ap.parse_args()
    if a.json is None:
        a.json = os.path.join(ROOT, "build-bench", "bench-results-mpi.jsonl" if a.mpi_only
                              else "bench-results.jsonl")
    train = [w for w in TRAIN + UNET_TRAIN if selected(a.only, w)]
    sample = [w for w in SAMPLE + UNET_SAMPLE if selected(a.only, w)]
    if a.only and not train and not sample:
        log("error: --only %s selects no workload (see score-bench --list)" % a.only)
        return 2

    if a.mpi_only:
        bench = os.path.join(a.build_dir, "bench", "score-bench")
        probe, coretype = None, "" if a.coretype in ("auto", "none") else a.coretype
        if os.access(bench, os.X_OK):  # the probe and the kernel choice of a full run
            coretype = choose_coretype(bench, a.coretype)[0]
            probe = Probe(bench, coretype)
        res = run_mpi(a, probe, coretype)
        if res is None:
            return 2
        print("\n".join(res[1]))
        if a.json:
            os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
            with open(a.json, "w") as f:
                for x in res[0]:
                    f.write(json.dumps(x) + "\n")
            print("JSON lines: %s" % a.json)
        return 0 if res[0] else 1

    bench = os.path.join(a.build_dir, "bench", "score-bench")
    if not os.access(bench, os.X_OK):
        log("error: %s not found; build first:\n  meson setup build-bench --buildtype=release "
            "-Db_ndebug=true && ninja -C build-bench" % bench)
        return 2
    threads = [int(t) for t in a.threads.split(",") if t]
    if a.quick:
        a.reps = min(a.reps, 2)
    reps = ["--reps", str(a.reps)] + (["--quick"] if a.quick else [])
    torch_ver = None
    if not a.no_torch:
        torch_ver = have_torch(a.python)
        if torch_ver is None:
            log("PyTorch is not importable by %s: the PyTorch reference is skipped "
                "(install python3-torch to compare)" % a.python)
    coretype, core = choose_coretype(bench, a.coretype)
    nproc = os.cpu_count()
    try:
        load = os.getloadavg()
    except OSError:
        load = (0, 0, 0)
    log("score-bench: %s; OpenBLAS core: %s; PyTorch: %s; %s CPUs; load average %.2f"
        % (bench, core or "?", torch_ver or "skipped", nproc, load[0]))
    if load[0] > 0.5 * (nproc or 1):
        log("warning: the machine is busy (load %.2f on %d CPUs): timings will be noisy; "
            "--stat min_s is more robust" % (load[0], nproc or 1))

    recs = []
    t_start = time.time()
    partial = None
    if a.json:  # raw records as they come (rewritten with the derived records at the end)
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        partial = open(a.json, "w")
    with tempfile.TemporaryDirectory(prefix="score-bench-") as tmp:
        model = os.path.join(tmp, "sampling-model.safetensors")
        if any(w in SAMPLE for w in sample):  # the U-Net samples from a fresh network
            r, rc, err = run_jsonl([bench, "--make-sampling-model", model] +
                                   (["--quick"] if a.quick else []),
                                   thread_env(threads[0], coretype), 600)
            if rc != 0:
                log(err)
                return 1
        smodel = ["--sampling-model", model]
        rounds = a.rounds or (1 if a.quick else 3)
        torch_ref = os.path.join(HERE, "torch_reference.py")
        probe = Probe(bench, coretype)
        retried = contended_kept = 0
        for rnd in range(rounds):
            for n in threads:
                env = thread_env(n, coretype)
                tenv, tuning = tuned_env(env, a.tuned_allocator)
                log("round %d/%d, threads = %d" % (rnd + 1, rounds, n))
                sets = [([bench, "--threads", str(n), "--only", ",".join([ROOF] + train)] + reps,
                         [a.python, torch_ref, "--threads", str(n), "--only", ",".join(train)]
                         + reps if train else None)]
                for w in sample:
                    sets.append(([bench, "--threads", str(n), "--only", w] + smodel + reps,
                                 [a.python, torch_ref, "--threads", str(n), "--only", w]
                                 + smodel + reps))
                jobs = []
                for lib_cmd, pt_cmd in sets:  # alternate who goes first from round to round
                    group = [("libscore", lib_cmd, env)]
                    if torch_ver and pt_cmd:
                        group.append(("pytorch", pt_cmd, env))
                        if not a.no_tuned:
                            group.append(("pytorch-tuned", pt_cmd + ["--tuned"], tenv))
                    jobs += group if rnd % 2 == 0 else group[::-1]
                for impl, cmd, jenv in jobs:
                    for attempt in range(a.retries + 1):
                        try:
                            load0 = os.getloadavg()[0]
                        except OSError:
                            load0 = 0.0
                        before = probe.measure(n)
                        s0 = cpu_snapshot()
                        r, rc, err = run_jsonl(cmd, jenv, 1800)
                        others = other_cpu(s0, cpu_snapshot())
                        after = probe.measure(n)
                        if rc != 0:
                            log("%s exited with %d:\n%s" % (impl, rc, err[-2000:]))
                        why = probe.contention(n, before, after, others, r)
                        for x in r:
                            x.setdefault("impl", impl)
                            x["threads"] = n
                            x["round"] = rnd
                            x["loadavg_start"] = load0
                            if others is not None:
                                x["other_cpu"], x["stolen_cpu"] = others
                            if why:
                                x["contended"] = why
                        if partial:
                            for x in r:
                                partial.write(json.dumps(x) + "\n")
                            partial.flush()
                        if not why or attempt == a.retries:
                            contended_kept += 1 if why else 0
                            recs += r
                            break
                        retried += 1
                        log("    contended (%s): running it again" % why)
    raw = list(recs)
    recs = pool(recs)

    def get(impl, w, n):
        for x in recs:
            if x.get("impl") == impl and x.get("workload") == w and x.get("threads") == n \
                    and "error" not in x:
                return x
        return None

    stat = a.stat
    roof = {n: get("libscore", ROOF, n) for n in threads}
    # the roofline is the machine's best: the fastest of the sgemm repetitions (a busy shared
    # machine only ever slows a repetition down)
    roof_gf = {n: (roof[n]["flops_per_unit"] / roof[n]["min_s"] * 1e-9) if roof[n] else None
               for n in threads}
    for n in threads:  # the probes between processes are the same sgemm: take the best of all
        if roof_gf[n] is not None and probe.best.get(n):
            roof_gf[n] = max(roof_gf[n], probe.best[n])
    flops = {x["workload"]: x["flops_per_unit"] for x in recs
             if x.get("impl") == "libscore" and "flops_per_unit" in x}

    def frac(rec, n):
        if rec is None or roof_gf.get(n) is None or rec["workload"] not in flops:
            return None
        f = flops[rec["workload"]]
        if rec["unit"] == "run":  # per-sample count scales with the samples of the record
            lib = get("libscore", rec["workload"], n)
            f = f / lib["items_per_run"] * rec["items_per_run"]
        return f / rec[stat] * 1e-9 / roof_gf[n]

    sg_speed = (roof[1]["min_s"] / roof[2]["min_s"]) if (1 in roof and 2 in roof and roof[1]
                                                         and roof[2]) else None
    def best_pt(w, n, fewer=True):
        return fastest_reference(get, threads, w, n, stat, fewer)

    def pt_name(rec, n):
        return rec["impl"] + ("" if rec["threads"] == n else "@%dT" % rec["threads"])

    def pct(v):
        return "%.0f" % (100 * v) if v is not None else "-"

    derived = []
    out = []
    row = "%-22s %2s | %10s | %10s %10s | %6s | %5s %5s | %5s %5s | %6s %6s | %7s %7s"
    hdr = row % ("workload", "T", "libscore", "pytorch", "pt tuned", "ratio", "%roof", "%roof",
                 "2T/1T", "vs sg", "spread", "spread", "RSS lib", "RSS pt")
    out.append(hdr)
    out.append(row % ("", "", "", "default", "", "lib/pt", "lib", "pt", "lib", "", "lib %",
                      "pt %", "MB", "MB"))
    out.append("-" * len(hdr))
    for n in threads:
        if roof[n]:
            # the time of one 2048^3 product at the roofline's rate (the best of the sgemm
            # workload's repetitions and of the probes), so that the row's two figures agree
            out.append(row % ("sgemm 2048^3 (roof)", n,
                              fmt_time(roof[n]["flops_per_unit"] / (roof_gf[n] * 1e9)),
                              "%.1f GF/s" % roof_gf[n], "", "", "100", "",
                              "%.2f" % sg_speed if (n == 2 and sg_speed) else "", "", "", "",
                              "", ""))
    for w in train + sample:
        for n in threads:
            lib, pt = get("libscore", w, n), best_pt(w, n)
            ptd, ptt = get("pytorch", w, n), get("pytorch-tuned", w, n)
            ratio = (pt[stat] / lib[stat] * (lib["items_per_run"] / pt["items_per_run"])
                     if lib and pt else None)
            fl, fp = frac(lib, n), frac(pt, n)
            sp = spr = None
            if n == 2 and get("libscore", w, 1) and lib:
                sp = get("libscore", w, 1)[stat] / lib[stat]
                spr = sp / sg_speed if sg_speed else None
            spt = None
            pt_same = best_pt(w, n, fewer=False)
            if n == 2 and best_pt(w, 1) and pt_same:
                spt = best_pt(w, 1)[stat] / pt_same[stat]
            rss_pt = min([x["peak_rss_kb"] for x in (ptd, ptt) if x] or [None]) \
                if (ptd or ptt) else None
            d = {"impl": "compare", "workload": w, "threads": n, "stat": stat,
                 "libscore_s": lib[stat] if lib else None,
                 "pytorch_s": ptd[stat] if ptd else None,
                 "pytorch_tuned_s": ptt[stat] if ptt else None,
                 "pytorch_best": pt_name(pt, n) if pt else None,
                 "ratio": ratio, "roof_frac_libscore": fl, "roof_frac_pytorch": fp,
                 "speedup_2t_libscore": sp, "speedup_2t_pytorch": spt,
                 "speedup_2t_sgemm": sg_speed if n == 2 else None,
                 "speedup_2t_vs_sgemm": spr,
                 "spread_libscore": lib.get("spread") if lib else None,
                 "spread_pytorch": pt.get("spread") if pt else None,
                 "contended_libscore": bool(lib and lib.get("contended")),
                 "contended_pytorch": bool(pt and pt.get("contended")),
                 "peak_rss_kb_libscore": lib["peak_rss_kb"] if lib else None,
                 "peak_rss_kb_pytorch": rss_pt,
                 "cpu_util_libscore": lib.get("cpu_util") if lib else None,
                 "cpu_util_pytorch": pt.get("cpu_util") if pt else None}
            derived.append(d)
            rss = w in sample
            mark = "*" if (d["contended_libscore"] or d["contended_pytorch"]) else ""
            out.append(row % (LABEL[w] + mark, n, fmt_time(lib[stat] if lib else None),
                              fmt_time(ptd[stat] if ptd else None),
                              fmt_time(ptt[stat] if ptt else None),
                              ("%.2fx" % ratio + ("^" if pt["threads"] != n else ""))
                              if ratio else "-", pct(fl), pct(fp),
                              "%.2f" % sp if sp else "", "%.0f%%" % (100 * spr) if spr else "",
                              pct(d["spread_libscore"]), pct(d["spread_pytorch"]),
                              "%.1f" % (lib["peak_rss_kb"] / 1024) if (lib and rss) else "",
                              "%.1f" % (rss_pt / 1024) if (rss_pt and rss) else ""))
    # 8: peak memory of the sampling processes
    for w in SAMPLE:
        for n in threads:
            lib = get("libscore", w, n)
            d = next((d for d in derived if d["workload"] == w and d["threads"] == n), None)
            if lib and d and d["peak_rss_kb_pytorch"]:
                out.append("%-22s %2d | %s | ratio RSS pytorch (smaller of the two) / libscore "
                           "= %.1f" % (("8 RSS " + LABEL[w].split(" ", 1)[1])[:22],
                                       n, "%.1f MB vs %.1f MB" % (
                                           lib["peak_rss_kb"] / 1024,
                                           d["peak_rss_kb_pytorch"] / 1024),
                                       d["peak_rss_kb_pytorch"] / lib["peak_rss_kb"]))
    # 13: cost of classifier-free guidance (guided / unguided time at the same NFE)
    cfg_ratio = {}
    for n in threads:
        parts = []
        for impl in ("libscore", "pytorch", "pytorch-tuned"):
            g, u = get(impl, CFG_PAIR[0], n), get(impl, CFG_PAIR[1], n)
            if g and u:
                r = (g[stat] / g["items_per_run"]) / (u[stat] / u["items_per_run"])
                cfg_ratio[(impl, n)] = r
                parts.append("%s %.2fx" % (impl, r))
        if parts:
            out.append("%-22s %2d | guided / unguided time, same NFE: %s" % (
                "13 CFG cost", n, ", ".join(parts)))

    # targets
    checks = []

    def target(name, value, ok, text):
        checks.append({"impl": "target", "target": name, "value": value,
                       "met": ok, "text": text})

    for (impl, n), r in sorted(cfg_ratio.items()):
        if impl == "libscore":
            target("CFG guided/unguided@%dT <= %.2fx" % (n, CFG_TARGET), r, r <= CFG_TARGET,
                   "%.2fx" % r)
    for d in derived:
        w, n = d["workload"], d["threads"]
        if d["ratio"] is not None and w in TRAIN + SAMPLE + UNET_TRAIN + UNET_SAMPLE:
            target("%s@%dT >= 1.5x the fastest PyTorch" % (w, n), d["ratio"], d["ratio"] >= 1.5,
                   "%.2fx (%s)" % (d["ratio"], d["pytorch_best"]))
        if w in ROOF_TARGET and n == 1 and d["roof_frac_libscore"] is not None:
            target("%s@1T >= 85%% roofline" % w, d["roof_frac_libscore"],
                   d["roof_frac_libscore"] >= 0.85,
                   "%.0f%% of sgemm (PyTorch %s)" % (
                       100 * d["roof_frac_libscore"],
                       "%.0f%%" % (100 * d["roof_frac_pytorch"])
                       if d["roof_frac_pytorch"] else "-"))
        if w in SCALING and n == 2 and d["speedup_2t_vs_sgemm"] is not None:
            target("%s 2T/1T >= 90%% of sgemm's" % w, d["speedup_2t_vs_sgemm"],
                   d["speedup_2t_vs_sgemm"] >= 0.9,
                   "speed-up %.2f vs sgemm %.2f = %.0f%%" % (
                       d["speedup_2t_libscore"], d["speedup_2t_sgemm"],
                       100 * d["speedup_2t_vs_sgemm"]))
        if w in SAMPLE + UNET_SAMPLE and d["peak_rss_kb_libscore"] and d["peak_rss_kb_pytorch"]:
            r = d["peak_rss_kb_libscore"] / d["peak_rss_kb_pytorch"]
            target("%s@%dT RSS <= 1/10 PyTorch" % (w, n), r, r <= 0.1,
                   "%.1f MB vs %.1f MB (%.1f%%)" % (d["peak_rss_kb_libscore"] / 1024,
                                                   d["peak_rss_kb_pytorch"] / 1024, 100 * r))

    print("\nPyTorch tuned configuration: %s, inference_mode for sampling, flush-to-zero"
          % tuned_env({}, a.tuned_allocator)[1])
    print("processes run again under contention: %d; kept although contended (rows marked *): "
          "%d" % (retried, contended_kept))
    print("\nlibscore vs PyTorch %s, OpenBLAS core %s%s, %s of %d x %d repetitions%s"
          % (torch_ver or "(skipped)", core or "?",
             " (forced%s)" % ("; PyTorch capped at oneDNN %s, ATen %s" % isa_of_core(coretype)
                              if isa_of_core(coretype) else "") if coretype else "",
             stat.replace("_s", ""), rounds, a.reps,
             ", QUICK (2000 samples, U-Net 100; fewer steps)" if a.quick else ""))
    print("\n".join(out))
    print("ratio = libscore throughput / throughput of the fastest PyTorch configuration "
          "(default or tuned, at this\nthread count or fewer when fewer run faster: ^ = PyTorch's 1-thread time); "
          "spread = (max - min) / median of the pooled repetitions;\n%roof = analytic FLOPs / time / "
          "sgemm 2048^3 GFLOP/s at the same thread count (best of its repetitions and the probes);\n2T/1T = speed-up from 1 to 2 threads, "
          "'vs sg' = that speed-up / the sgemm's 2T/1T speed-up.\n"
          "libscore's threads (score-bench --par auto): the model's own (SCORE_MODEL_PARAM_THREADS, "
          "BLAS on 1 thread) for every workload\n(training, the Hyvarinen and sliced losses' tangent paths, "
          "sampling). PyTorch: torch.set_num_threads.")
    if checks:
        print("\nTargets:")
        for c in checks:
            print("  [%s] %-52s %s" % ("met" if c["met"] else "MISS", c["target"], c["text"]))
    mpi = run_mpi(a, probe, coretype) if a.mpi else None
    if mpi is not None:
        print("\n".join(mpi[1]))
        raw += mpi[0]
    print("total %.0f s" % (time.time() - t_start))

    if partial:
        partial.close()
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            meta = {"impl": "meta", "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "openblas_core": core, "coretype_forced": coretype,
                    "isa_cap": list(isa_of_core(coretype) or ()) if coretype else [],
                    "torch": torch_ver,
                    "cpus": nproc, "loadavg": load[0], "quick": a.quick, "reps": a.reps, "rounds": rounds,
                    "stat": stat, "pytorch_tuning": None if a.no_tuned else tuned_env({}, a.tuned_allocator)[1],
                    "retried": retried, "contended_kept": contended_kept}
            cfg = [{"impl": "cfg_cost", "threads": n, "of": impl, "guided_over_unguided": r}
                   for (impl, n), r in sorted(cfg_ratio.items())]
            for x in [meta] + raw + derived + cfg + checks:
                f.write(json.dumps(x) + "\n")
        print("JSON lines: %s" % a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
