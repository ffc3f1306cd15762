#!/usr/bin/env python3
"""Writes scikit-learn's 8x8 handwritten digits as image data for `score train`.

The digits (1797 grayscale images of 8x8 pixels with values 0..16, and their labels 0..9) are
the copy of the UCI optical digits that ships with scikit-learn (Debian: python3-sklearn); this
script reads that copy and never downloads anything. Pixel values are scaled to 8 bits,
round(v * 255 / 16), so that they are ordinary 8-bit pixels (17 distinct levels).

Writes into OUT:
  digits.npy         uint8, shape (1797, 1, 8, 8): score train --data OUT/digits.npy
  digits-labels.npy  int64, shape (1797,):         --labels OUT/digits-labels.npy
  png/<digit>/NNNN.png with --png (8-bit grayscale): --data OUT/png --class-dirs

usage: digits-images.py OUT [--png] [--limit N]
"""
import argparse
import os
import struct
import sys
import zlib

try:
    import numpy as np
    from sklearn.datasets import load_digits
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skipped: {e} (Debian: apt-get install python3-sklearn)")
    sys.exit(77)


def png_gray8(path, img):
    """A minimal 8-bit grayscale PNG (signature, IHDR, one IDAT, IEND) with the standard
    library's zlib; img is an H x W array of 0..255."""
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="output directory (created)")
    ap.add_argument("--png", action="store_true", help="also write a PNG directory per class")
    ap.add_argument("--limit", type=int, default=0, help="only the first N images")
    a = ap.parse_args()
    d = load_digits()
    x = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)   # (N, 8, 8)
    y = d.target.astype(np.int64)
    if a.limit > 0:
        x, y = x[:a.limit], y[:a.limit]
    os.makedirs(a.out, exist_ok=True)
    np.save(os.path.join(a.out, "digits.npy"), x[:, None, :, :])
    np.save(os.path.join(a.out, "digits-labels.npy"), y)
    if a.png:
        for i, (img, label) in enumerate(zip(x, y)):
            sub = os.path.join(a.out, "png", str(label))
            os.makedirs(sub, exist_ok=True)
            png_gray8(os.path.join(sub, f"{i:04d}.png"), img)
    print(f"wrote {len(x)} digits of 8x8 pixels to {a.out}"
          f" (digits.npy, digits-labels.npy{', png/<digit>/' if a.png else ''})")


if __name__ == "__main__":
    main()
