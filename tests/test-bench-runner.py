#!/usr/bin/env python3
"""The comparison logic of bench/run.py on made-up records: the reference on n CPUs is the
fastest PyTorch configuration at up to n threads, pooling keeps clean rounds only, and the MPI
scaling's one-rank baseline and contention check.
usage: test-bench-runner.py BENCH/run.py"""
import importlib.util
import sys

spec = importlib.util.spec_from_file_location("bench_run", sys.argv[1])
run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run)

fails = 0


def check(what, ok):
    global fails
    if not ok:
        print("FAIL:", what)
        fails += 1


def rec(impl, threads, median, items=1, **kw):
    r = {"impl": impl, "workload": "w", "threads": threads, "median_s": median,
         "items_per_run": items}
    r.update(kw)
    return r


recs = [rec("pytorch", 1, 3.0), rec("pytorch-tuned", 1, 2.0),
        rec("pytorch", 2, 2.5), rec("pytorch-tuned", 2, 2.2)]


def get(impl, w, t):
    return next((x for x in recs if x["impl"] == impl and x["workload"] == w and
                 x["threads"] == t), None)


b1 = run.fastest_reference(get, [1, 2], "w", 1, "median_s")
check("1 CPU: the tuned configuration at 1 thread", b1 is recs[1])
b2 = run.fastest_reference(get, [1, 2], "w", 2, "median_s")
check("2 CPUs: the 1-thread time when it is the faster (2.0 < 2.2)", b2 is recs[1])
b2s = run.fastest_reference(get, [1, 2], "w", 2, "median_s", fewer=False)
check("2 CPUs, same thread count only: tuned at 2 threads", b2s is recs[3])
recs[3]["median_s"] = 1.5
b2 = run.fastest_reference(get, [1, 2], "w", 2, "median_s")
check("2 CPUs: the 2-thread time when it is the faster", b2 is recs[3])
# per item: 2 items in 2.8 s (1.4 s each) beat 1 item in 1.5 s
recs.append(rec("pytorch", 4, 2.8, items=2))
b4 = run.fastest_reference(get, [1, 2, 4], "w", 4, "median_s")
check("time per item decides", b4 is recs[4])
check("no record: None", run.fastest_reference(get, [1, 2], "other", 2, "median_s") is None)

# pooling: a contended process is left out when a clean one of the same key exists
p = run.pool([rec("libscore", 1, 0, times_s=[1.0, 1.2], peak_rss_kb=10, cpu_util=1.0),
              rec("libscore", 1, 0, times_s=[5.0, 6.0], peak_rss_kb=10, cpu_util=0.5,
                  contended=True),
              rec("libscore", 1, 0, times_s=[1.1, 1.4], peak_rss_kb=12, cpu_util=0.9)])
check("one pooled record", len(p) == 1)
check("contended repetitions dropped, clean ones pooled", p[0]["times_s"] == [1.0, 1.2, 1.1, 1.4])
check("median and spread of the pooled repetitions",
      abs(p[0]["median_s"] - 1.15) < 1e-12 and abs(p[0]["spread"] - 0.4 / 1.15) < 1e-12)
check("largest peak RSS", p[0]["peak_rss_kb"] == 12)
q = run.pool([rec("libscore", 2, 0, times_s=[5.0], peak_rss_kb=1, cpu_util=0.5, contended=True)])
check("a contended record is kept when there is no clean one", q[0]["times_s"] == [5.0])

# MPI scaling: the faster one-rank run is the baseline of both kinds
m = [{"ranks": 1, "scaling": "strong", "step_median_s": 0.080},
     {"ranks": 2, "scaling": "strong", "step_median_s": 0.031},
     {"ranks": 1, "scaling": "weak", "step_median_s": 0.060},
     {"ranks": 2, "scaling": "weak", "step_median_s": 0.062}]
check("T(1) is the faster one-rank median", run.mpi_scaling(m) == 0.060)
check("strong speed-up T(1) / T(2)", abs(m[1]["speedup"] - 0.060 / 0.031) < 1e-12 and
      abs(m[1]["efficiency"] - 0.030 / 0.031) < 1e-12)
check("weak speed-up 2 T(1) / T(2)", abs(m[3]["speedup"] - 2 * 0.060 / 0.062) < 1e-12)
check("the slower one-rank run: speed-up below 1", m[0]["speedup"] < 1 and m[2]["speedup"] == 1)
check("no one-rank run: no speed-ups",
      run.mpi_scaling([{"ranks": 2, "scaling": "weak", "step_median_s": 0.1}]) is None)
check("steady steps pass", run.mpi_unsteady([{"step_median_s": 0.06, "step_min_s": 0.059}]) == "")
check("a median far above the best step is contention",
      "1.36x" in run.mpi_unsteady([{"step_median_s": 0.080, "step_min_s": 0.059}]))

print("%d failed" % fails if fails else "bench runner: all checks passed")
sys.exit(1 if fails else 0)
