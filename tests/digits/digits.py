#!/usr/bin/env python3
"""Class-conditional generation of 8x8 handwritten digits with the score tool, judged by an
independent classifier.

The digits are scikit-learn's copy of the UCI optical digits (1797 images of 8x8 pixels with
integer values 0..16, shipped with the package: nothing is downloaded). The script
  1. writes them as a CSV: 64 pixel columns p0..p63 plus the label column 'digit'. The pixels
     are integers, which have no density; each gets uniform noise u in [0, 1) (x + u, the usual
     dequantization), so the model learns a continuous density whose samples floor back to
     pixel values;
  2. trains a class-conditional model: score train --label-column digit;
  3. draws N samples per class at each guidance weight W: score sample --class K --guidance W;
  4. fits a support vector classifier (scikit-learn SVC) on real digits (80 %; its accuracy on
     the other 20 % is printed) and labels the samples, floored and clipped to 0..16, with it;
  5. prints the share of samples labelled as their requested class for every W, writes an SVG
     grid of 10 classes x 10 samples for every W (digits-grid-wW.svg), and fails unless that
     share reaches --min-accuracy at the best W;
  6. draws dpmpp-2m samples without and with --clip 0,16 (and --threshold 0.995), prints the
     share of samples with a pixel out of range and their quality, and fails unless --clip
     leaves none out of range.
Exit status 77 (meson's "skipped") when scikit-learn is not installed.

usage: digits.py --score PATH/TO/score --out DIR [--steps N] [--n N] [--min-accuracy A]
"""
import argparse
import os
import subprocess
import sys
import time

try:
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skipped: {e} (Debian: apt-get install python3-sklearn)")
    sys.exit(77)

WEIGHTS = (0.0, 1.0, 2.0, 4.0)


def run(cmd, env):
    t0 = time.time()
    subprocess.run(cmd, check=True, env=env)
    return time.time() - t0


def write_csv(path, x, y):
    with open(path, "w") as f:
        f.write(",".join([f"p{i}" for i in range(x.shape[1])] + ["digit"]) + "\n")
        for row, label in zip(x, y):
            f.write(",".join(f"{v:.4f}" for v in row) + f",{label}\n")


def read_csv(path):
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def svg_grid(path, images, title):
    """images: rows x cols x 64 pixel values in 0..16 (ink = high); one grey square per pixel."""
    px, gap, top = 4, 4, 18
    rows, cols = images.shape[0], images.shape[1]
    w = cols * (8 * px + gap) + gap
    h = top + rows * (8 * px + gap) + gap
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}">',
           f'<rect width="{w}" height="{h}" fill="#ffffff"/>',
           f'<text x="{gap}" y="13" font-family="sans-serif" font-size="11">{title}</text>']
    for r in range(rows):
        for c in range(cols):
            x0, y0 = gap + c * (8 * px + gap), top + r * (8 * px + gap)
            for k in range(64):
                v = int(round(255 * (1 - min(max(images[r, c, k], 0), 16) / 16)))
                out.append(f'<rect x="{x0 + (k % 8) * px}" y="{y0 + (k // 8) * px}" '
                           f'width="{px}" height="{px}" fill="rgb({v},{v},{v})"/>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--score", required=True, help="the score command-line tool")
    ap.add_argument("--out", required=True, help="directory for the CSV, model, samples, SVG")
    ap.add_argument("--steps", type=int, default=3000, help="training steps [3000]")
    ap.add_argument("--n", type=int, default=500, help="samples per class and weight [500]")
    ap.add_argument("--min-accuracy", type=float, default=0.90,
                    help="share of samples labelled as their class required at the best W [0.9]")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")

    digits = load_digits()
    x, y = digits.data, digits.target
    rng = np.random.default_rng(0)
    csv = os.path.join(a.out, "digits.csv")
    write_csv(csv, x + rng.random(x.shape), y)

    model = os.path.join(a.out, "digits.safetensors")
    train = [a.score, "train", "--data", csv, "--label-column", "digit", "--schedule", "edm",
             "--predict", "edm", "--hidden", "256", "--depth", "3", "--steps", str(a.steps),
             "--batch", "256", "--lr", "1e-3", "--threads", "2", "-o", model, "-q"]
    print("$ " + " ".join(train[1:]), flush=True)
    print(f"trained in {run(train, env):.1f} s", flush=True)

    # the independent judge: an SVC fitted on real digits
    perm = rng.permutation(len(y))
    cut = int(0.8 * len(y))
    clf = SVC(gamma=0.001, C=10.0).fit(x[perm[:cut]], y[perm[:cut]])
    real_acc = float(np.mean(clf.predict(x[perm[cut:]]) == y[perm[cut:]]))
    print(f"SVC accuracy on {len(y) - cut} held-out real digits: {real_acc:.4f}")

    acc, per_class, samples = {}, {}, {}
    t_sample = 0.0
    for w in WEIGHTS:
        hits, worst = 0, 1.0
        for k in range(10):
            path = os.path.join(a.out, f"class{k}-w{w:g}.csv")
            cmd = [a.score, "sample", model, "--class", str(k), "--guidance", f"{w:g}",
                   "-n", str(a.n), "--sampler", "edm",
                   "--seed", str(100 + k), "--threads", "2", "-o", path, "-q"]
            if w == WEIGHTS[0] and k == 0:
                print("$ " + " ".join(cmd[1:]), flush=True)
            t_sample += run(cmd, env)
            s = read_csv(path)
            assert s.shape == (a.n, 64), s.shape
            pixels = np.clip(np.floor(s), 0, 16)  # the inverse of x + u, u in [0, 1)
            ok = int(np.sum(clf.predict(pixels) == k))
            hits += ok
            worst = min(worst, ok / a.n)
            samples[(w, k)] = pixels
        acc[w], per_class[w] = hits / (10 * a.n), worst
    print(f"sampled 10 x {len(WEIGHTS)} x {a.n} digits in {t_sample:.1f} s")
    print("guidance W | labelled as the requested class | worst class")
    for w in WEIGHTS:
        print(f"{w:10g} | {acc[w]:31.4f} | {per_class[w]:.4f}")
    for w in WEIGHTS:
        grid = np.stack([samples[(w, k)][:10] for k in range(10)])
        svg_grid(os.path.join(a.out, f"digits-grid-w{w:g}.svg"), grid,
                 f"score sample --class K --guidance {w:g} (row K = 0..9)")
    best = max(WEIGHTS, key=lambda w: acc[w])
    print(f"best W = {best:g}: {acc[best]:.4f}; grids of 10 classes x 10 samples: "
          f"{os.path.join(a.out, 'digits-grid-w*.svg')}")
    if acc[best] < a.min_accuracy:
        print(f"FAIL: {acc[best]:.4f} < {a.min_accuracy} at the best guidance weight")
        return 1
    return clip_check(a, model, clf, x[perm[cut:]], env)


def sliced_w2(a, b, rng, n_proj=200):
    """Sliced 2-Wasserstein distance of two samples (random unit directions, quantiles)."""
    d = rng.standard_normal((n_proj, a.shape[1]))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    q = np.linspace(0.005, 0.995, 100)
    pa, pb = a @ d.T, b @ d.T
    return float(np.sqrt(np.mean((np.quantile(pa, q, axis=0) - np.quantile(pb, q, axis=0)) ** 2)))


def clip_check(a, model, clf, held_out, env):
    """dpmpp-2m samples without and with --clip 0,16 (the pixel range; the dequantized data lie
    in [0, 17)): the share of samples with a pixel outside [0, 17), outside [0, 16], and the
    quality (the SVC's accuracy at W = 0, sliced W2 of the unfloored samples to held-out real
    digits), with up to 200 samples per class. Fails unless --clip leaves no pixel outside [0, 16]."""
    print("dpmpp-2m, W = 0       | outside [0,17) | outside [0,16] | accuracy | sliced W2 to held-out")
    worst_clipped, n_per = 0.0, min(a.n, 200)
    for opts in ([], ["--clip", "0,16"], ["--clip", "0,16", "--threshold", "0.995"]):
        hits, out17, out16, allx = 0, 0, 0, []
        for k in range(10):
            path = os.path.join(a.out, f"clip-class{k}.csv")
            cmd = [a.score, "sample", model, "--class", str(k), "-n", str(n_per), "--sampler",
                   "dpmpp-2m", "--seed", str(300 + k), "--threads", "2", "-o", path, "-q"] + opts
            run(cmd, env)
            s = read_csv(path)
            out17 += int(np.sum(np.any((s < 0) | (s >= 17), axis=1)))
            out16 += int(np.sum(np.any((s < 0) | (s > 16), axis=1)))
            hits += int(np.sum(clf.predict(np.clip(np.floor(s), 0, 16)) == k))
            allx.append(s)
        n = 10 * a.n
        ref = held_out + np.random.default_rng(2).random(held_out.shape)  # dequantized as trained
        sw = sliced_w2(np.concatenate(allx), ref, np.random.default_rng(1))
        label = " ".join(opts) if opts else "(none)"
        print(f"{label:21s} | {out17 / n:14.4f} | {out16 / n:14.4f} | {hits / n:8.4f} | {sw:.3f}")
        if opts:
            worst_clipped = max(worst_clipped, out16 / n)
    if worst_clipped > 0:
        print(f"FAIL: {worst_clipped:.4f} of the samples with --clip 0,16 have a pixel outside")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
