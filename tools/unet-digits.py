#!/usr/bin/env python3
"""Trains the class-conditional U-Net of examples/unet_digits.c on scikit-learn's 8x8 digits,
samples 10 images per class with classifier-free guidance, and has an independent classifier
(an RBF support-vector machine fitted on the real digits) label them.

The digits (1797 images of 8x8 pixels with values 0..16) are the copy that ships with
scikit-learn (Debian: python3-sklearn); nothing is downloaded. Pixels are scaled to [-1, 1]
(v / 8 - 1) for training and samples back to 0..16 (clipped) for the classifier.

Prints the example's output (parameter count, loss, wall and CPU time), the classifier's
accuracy on held-out real digits (for reference), and the fraction of samples it labels as
their requested class, overall and per class; writes the 10 x 10 grid of samples (row k: class
k) as a PNG with --png.

usage: unet-digits.py [--exe PATH] [--png FILE] [--keep DIR] [-- example options...]
  --exe   the example program (default: build/examples/example-unet-digits)
Options after `--` go to the example (e.g. --steps 3000 --threads 2).
Exit code 77 when numpy or scikit-learn is missing.
"""
import argparse
import os
import struct
import subprocess
import sys
import tempfile
import zlib

try:
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skipped: {e} (Debian: apt-get install python3-sklearn)")
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_png_gray8(path, img):
    """An 8-bit grayscale PNG (signature, IHDR, one IDAT, IEND) through zlib."""
    h, w = img.shape

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + bytes(int(v) for v in row) for row in img)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def grid(images, rows, cols, scale=4, gap=2):
    """rows x cols images of 8x8 values in 0..16 as one 8-bit image (white gaps, black ink on
    white as the digits are usually shown)."""
    cell = 8 * scale
    out = np.full((rows * cell + (rows + 1) * gap, cols * cell + (cols + 1) * gap), 255,
                  dtype=np.uint8)
    for i in range(rows):
        for j in range(cols):
            img = images[i * cols + j].reshape(8, 8)
            big = np.kron(img, np.ones((scale, scale)))
            y0, x0 = gap + i * (cell + gap), gap + j * (cell + gap)
            out[y0:y0 + cell, x0:x0 + cell] = np.rint(255 - big * (255 / 16)).astype(np.uint8)
    return out


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        k = argv.index("--")
        argv, extra = argv[:k], argv[k + 1:]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exe", default=os.path.join(ROOT, "build", "examples",
                                                  "example-unet-digits"))
    ap.add_argument("--png", default="", help="write the 10 x 10 sample grid here")
    ap.add_argument("--keep", default="", help="keep the data and samples in this directory")
    a = ap.parse_args(argv)

    d = load_digits()
    x = (d.images.reshape(-1, 64) / 8.0 - 1.0).astype("<f4")
    y = d.target.astype("<i4")
    work = a.keep or tempfile.mkdtemp(prefix="unet-digits-")
    os.makedirs(work, exist_ok=True)
    data, labels, out = (os.path.join(work, f) for f in ("digits.f32", "labels.i32",
                                                          "samples.f32"))
    x.tofile(data)
    y.tofile(labels)
    cmd = [a.exe, "--data", data, "--labels", labels, "--per-class", "10", "--out", out] + extra
    print("$ " + " ".join(cmd), flush=True)
    if subprocess.run(cmd).returncode != 0:
        return 1
    s = np.fromfile(out, dtype="<f4").reshape(-1, 64)
    pix = np.clip((s.astype(np.float64) + 1.0) * 8.0, 0.0, 16.0)
    want = np.repeat(np.arange(10), len(s) // 10)

    # the classifier: RBF SVM on the raw 0..16 pixels (scikit-learn's digits example settings);
    # its accuracy on the second half when fitted on the first, then refitted on all digits
    feats = d.images.reshape(-1, 64)
    half = len(feats) // 2
    held = SVC(gamma=0.001).fit(feats[:half], d.target[:half]).score(feats[half:],
                                                                    d.target[half:])
    clf = SVC(gamma=0.001).fit(feats, d.target)
    got = clf.predict(pix)
    acc = float(np.mean(got == want))
    print(f"classifier (SVC, gamma 0.001) on held-out real digits: {100 * held:.1f}%")
    print(f"samples labelled as their requested class: {100 * acc:.1f}% of {len(s)}")
    print("per class: " + ", ".join(f"{k}: {int(np.sum((got == want) & (want == k)))}/"
                                    f"{int(np.sum(want == k))}" for k in range(10)))
    if a.png:
        write_png_gray8(a.png, grid(pix, 10, len(s) // 10))
        print(f"wrote {a.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
