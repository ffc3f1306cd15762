#!/bin/sh
# The `score` tool on image data: a directory of PNG files with class directories and a NumPy
# .npy array (float32 and uint8, with labels) trained with the MLP and the U-Net (--model
# unet); samples drawn as a PNG grid whose size follows from the stored image shape, and read
# back as image data; the refusals of truncated and mismatched PNG files, hostile .npy headers
# and option misuse. The files are written here by python3's standard library (struct, zlib)
# only.
# Usage: test-cli-images.sh /path/to/score /path/to/python3
set -u
SCORE=${1:?usage: test-cli-images.sh /path/to/score /path/to/python3}
PY=${2:-python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/score-cli-images.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
fails=0
n=0

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
check() {   # check DESCRIPTION COMMAND...: the command must succeed
    desc=$1
    shift
    n=$((n + 1))
    "$@" || fail "$desc"
}
run() {     # run LOG -- command...: stdout+stderr into $T/LOG; a failure is reported
    log=$1
    shift 2
    n=$((n + 1))
    if ! "$@" >"$T/$log" 2>&1; then
        fail "status $? of: $*"
        sed 's/^/    /' "$T/$log"
    fi
}
refused() { # refused STATUS PATTERN -- command...: exit STATUS, one stderr line with PATTERN
    want=$1 pat=$2
    shift 3
    n=$((n + 1))
    "$@" >"$T/out" 2>"$T/err"
    st=$?
    if [ "$st" -ne "$want" ] || [ "$(wc -l <"$T/err")" -ne 1 ] || ! grep -qF -- "$pat" "$T/err"; then
        fail "$* (want status $want and one line containing: $pat)"
        sed 's/^/    got: /' "$T/err"
    fi
}

# The data: class 'dark' and class 'light', 8 images of 4x4 8-bit grayscale pixels each
# (a fixed pattern plus a small per-image offset), as PNG files and as .npy arrays.
cat >"$T/gen.py" <<'EOF'
import os, struct, sys, zlib
out = sys.argv[1]

def png(path, rows, bits=8, color=0):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    raw = b"".join(b"\0" + bytes(r) for r in rows)
    h, w = len(rows), len(rows[0]) * 8 // bits // (3 if color == 2 else 1)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bits, color, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

def npy(path, descr, shape, payload):
    d = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, "".join(f"{s}, " for s in shape))
    pad = 64 - (10 + len(d) + 1) % 64
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d) + pad + 1) + d.encode() + b" " * pad + b"\n" + payload)

imgs, labels = [], []
for c, (name, base) in enumerate((("dark", 30), ("light", 200))):
    os.makedirs(f"{out}/png/{name}", exist_ok=True)
    for k in range(8):
        img = [[base + 6 * ((x + y + k) % 4) for x in range(4)] for y in range(4)]
        png(f"{out}/png/{name}/{k:02d}.png", img)
        imgs.append(img)
        labels.append(c)
npy(f"{out}/u8.npy", "|u1", (16, 1, 4, 4), bytes(v for img in imgs for r in img for v in r))
npy(f"{out}/f4.npy", "<f4", (16, 16), struct.pack("<256f", *[v / 255 for img in imgs for r in img for v in r]))
npy(f"{out}/labels.npy", "<i8", (16,), struct.pack("<16q", *labels))
npy(f"{out}/labels15.npy", "<i8", (15,), struct.pack("<15q", *labels[:15]))
npy(f"{out}/huge.npy", "<f4", (1 << 40, 1 << 40), b"\0" * 16)
npy(f"{out}/big-endian.npy", ">f4", (2, 2), b"\0" * 16)
npy(f"{out}/short.npy", "<f4", (16, 16), b"\0" * 100)
# a 3x4 image among the 4x4 ones, and a truncated file
os.makedirs(f"{out}/mixed", exist_ok=True)
png(f"{out}/mixed/a.png", imgs[0])
png(f"{out}/mixed/b.png", imgs[1][:3])
os.makedirs(f"{out}/trunc", exist_ok=True)
png(f"{out}/trunc/a.png", imgs[0])
data = open(f"{out}/trunc/a.png", "rb").read()
open(f"{out}/trunc/b.png", "wb").write(data[:len(data) - 30])

def ihdr(path):   # "W H BITS COLOR" of a PNG file
    w, h, bits, color = struct.unpack(">IIBB", open(path, "rb").read()[16:26])
    return f"{w} {h} {bits} {color}"
if len(sys.argv) > 2:
    print(ihdr(sys.argv[2]))
EOF
if ! "$PY" "$T/gen.py" "$T"; then
    echo "cannot write the test images with $PY"
    exit 1
fi
ihdr() { "$PY" -c 'import struct,sys; d=open(sys.argv[1],"rb").read(); print(*struct.unpack(">IIBB", d[16:26]))' "$1"; }

TR="--steps 150 --batch 16 --hidden 32 --depth 2 --warmup 10 -q"

# ---- .npy (always built) --------------------------------------------------------------------
run u8.log -- "$SCORE" train --data "$T/u8.npy" --labels "$T/labels.npy" $TR -o "$T/u8.st"
run u8-info.log -- "$SCORE" info -a "$T/u8.st"
check "uint8 .npy: image shape stored" grep -q "score.train.image.shape *1x4x4" "$T/u8-info.log"
check "uint8 .npy: pixel range stored" grep -q "score.train.image.range *0,255" "$T/u8-info.log"
check "uint8 .npy: pixels 0..255 mapped to [-1, 1]" test "$(grep -c "column [0-9]* *shift 127.5, scale 127.5$" "$T/u8-info.log")" -eq 16
check "uint8 .npy: classes from --labels" grep -q "class label, 2 classes (0, 1)" "$T/u8-info.log"
run f4.log -- "$SCORE" train --data "$T/f4.npy" --image 1x4x4 $TR -o "$T/f4.st"
run f4-info.log -- "$SCORE" info -a "$T/f4.st"
check "float32 .npy: --image stored" grep -q "score.train.image.shape *1x4x4" "$T/f4-info.log"
check "float32 .npy: value range stored" grep -q "score.train.image.range *0.117647059,0.854901969$" "$T/f4-info.log"
# a CSV of 4 values per row drawn as 2x2 images: --image stored with the data's range
printf 'a,b,c,d\n0,1,2,3\n4,5,6,7\n1,1,1,1\n2,2,2,2\n' >"$T/four.csv"
run four.log -- "$SCORE" train --data "$T/four.csv" --image 2x2 --steps 5 --hidden 8 -q -o "$T/four.st"
run four-info.log -- "$SCORE" info -a "$T/four.st"
check "CSV --image 2x2: shape stored" grep -q "score.train.image.shape *1x2x2" "$T/four-info.log"
check "CSV --image 2x2: range stored" grep -q "score.train.image.range *0,7$" "$T/four-info.log"
refused 1 "--image 3x3 does not fit the data (4 values per row)" -- "$SCORE" train --data "$T/four.csv" --image 3x3 -o "$T/x.st" -q
refused 1 "huge.npy: the shape's size overflows" -- "$SCORE" train --data "$T/huge.npy" -o "$T/x.st" -q
refused 1 "big-endian" -- "$SCORE" train --data "$T/big-endian.npy" -o "$T/x.st" -q
refused 1 "the shape needs 256 values of 4 bytes, the file holds 100 bytes" -- "$SCORE" train --data "$T/short.npy" -o "$T/x.st" -q
refused 1 "labels must have shape (16,)" -- "$SCORE" train --data "$T/u8.npy" --labels "$T/labels15.npy" -o "$T/x.st" -q
refused 1 "--image 2x4x4 does not fit the data (16 values per row" -- "$SCORE" train --data "$T/u8.npy" --image 2x4x4 -o "$T/x.st" -q
refused 2 "--class-dirs is for a directory of PNG files" -- "$SCORE" train --data "$T/u8.npy" --class-dirs -o "$T/x.st" -q
refused 2 "--label-column and --condition-columns are for CSV data" -- "$SCORE" train --data "$T/u8.npy" --label-column y -o "$T/x.st" -q
refused 2 "--rows goes with --png FILE.png" -- "$SCORE" sample "$T/u8.st" --rows 2
refused 2 "--image 'x': expected CxHxW" -- "$SCORE" sample "$T/u8.st" --png "$T/x.png" --image x

# ---- the U-Net (--model unet) on the uint8 .npy images with labels --------------------------
# a tiny network (4 and 8 channels, 2 levels, one block) trained for a few steps: the file
# carries the U-Net, samples come back in pixel units, and the run is reproducible
UN="--model unet --unet-width 4 --unet-mults 1,2 --unet-blocks 1 --unet-groups 2 --embed-dim 8 --steps 20 --batch 8 --warmup 5 --dequantize uniform -q"
run unet.log -- "$SCORE" train --data "$T/u8.npy" --labels "$T/labels.npy" $UN -o "$T/unet.st"
run unet-info.log -- "$SCORE" info -a "$T/unet.st"
check "U-Net: the kind stored" grep -q "^model: *unet, dim 16" "$T/unet-info.log"
check "U-Net: the architecture stored" grep -q "U-Net on 1x4x4 images, base width 4, multipliers 1,2, 1 blocks per level, 2 groups, attention 1" "$T/unet-info.log"
check "U-Net: classes from --labels" grep -q "class label, 2 classes (0, 1)" "$T/unet-info.log"
run unet-s1.csv -- "$SCORE" sample "$T/unet.st" --class 1 -n 3 --sampler ddim --steps 8 --seed 4 -q
check "U-Net: 3 samples of 16 pixel values" test "$(grep -c '^[-0-9.e]*\(,[-0-9.e]*\)\{15\}$' "$T/unet-s1.csv")" -eq 3
run unet2.log -- "$SCORE" train --data "$T/u8.npy" --labels "$T/labels.npy" $UN -o "$T/unet2.st"
run unet-s2.csv -- "$SCORE" sample "$T/unet2.st" --class 1 -n 3 --sampler ddim --steps 8 --seed 4 -q
check "U-Net: the same run twice, identical samples" cmp -s "$T/unet-s1.csv" "$T/unet-s2.csv"
# --init: a U-Net run starts from a saved U-Net of the same architecture and image shape; at
# learning rate 0 it keeps its weights (the same samples); another architecture is refused
run unet-init.log -- "$SCORE" train --data "$T/u8.npy" --labels "$T/labels.npy" $UN --lr 0 --ema 0 -o "$T/unet-init.st" --init "$T/unet.st"
run unet-s3.csv -- "$SCORE" sample "$T/unet-init.st" --class 1 -n 3 --sampler ddim --steps 8 --seed 4 -q
check "U-Net: --init at learning rate 0 keeps the weights" cmp -s "$T/unet-s1.csv" "$T/unet-s3.csv"
UNA="--labels $T/labels.npy --steps 2 --batch 8 --embed-dim 8 -q -o $T/x.st --init $T/unet.st"
refused 1 "its network is a U-Net, this run trains an MLP (--model)" -- "$SCORE" train --data "$T/u8.npy" --dequantize uniform $UNA
refused 1 "its network has --unet-width 4, this run asks for 8" -- "$SCORE" train --data "$T/u8.npy" --dequantize uniform --model unet --unet-width 8 --unet-mults 1,2 --unet-blocks 1 --unet-groups 2 $UNA
refused 1 "its network has --unet-mults 1,2, this run asks for 1,1" -- "$SCORE" train --data "$T/u8.npy" --dequantize uniform --model unet --unet-width 4 --unet-mults 1,1 --unet-blocks 1 --unet-groups 2 $UNA
refused 1 "its network has --unet-blocks 1, this run asks for 2" -- "$SCORE" train --data "$T/u8.npy" --dequantize uniform --model unet --unet-width 4 --unet-mults 1,2 --unet-blocks 2 --unet-groups 2 $UNA
refused 1 "its U-Net takes 1x4x4 images, the data are 1x2x8" -- "$SCORE" train --data "$T/f4.npy" --image 1x2x8 --model unet --unet-width 4 --unet-mults 1,2 --unet-blocks 1 --unet-groups 2 $UNA
refused 2 "--unet-width applies to --model unet only" -- "$SCORE" train --data "$T/u8.npy" --unet-width 4 -o "$T/x.st" -q
refused 2 "--hidden applies to the MLP" -- "$SCORE" train --data "$T/u8.npy" --model unet --hidden 8 -o "$T/x.st" -q
refused 2 "--model unet trains with the denoising losses" -- "$SCORE" train --data "$T/u8.npy" --model unet --loss ssm -o "$T/x.st" -q
refused 2 "--unet-mults '1,0'" -- "$SCORE" train --data "$T/u8.npy" --model unet --unet-mults 1,0 -o "$T/x.st" -q
refused 2 "--model unet needs image data" -- "$SCORE" train --data "$T/f4.npy" --model unet -o "$T/x.st" -q
refused 1 "4 levels need sizes divisible by 8" -- "$SCORE" train --data "$T/f4.npy" --image 1x4x4 --model unet --unet-width 4 --unet-mults 1,1,1,1 -o "$T/x.st" -q

# ---- PNG (when built with libpng) -----------------------------------------------------------
if "$SCORE" train --data "$T/png" --class-dirs $TR -o "$T/png.st" 2>"$T/png.err"; then
    n=$((n + 1))
    run png-info.log -- "$SCORE" info -a "$T/png.st"
    check "PNG: image shape stored" grep -q "score.train.image.shape *1x4x4" "$T/png-info.log"
    check "PNG: classes from the directories" grep -q "dark, light" "$T/png-info.log"
    # 6 samples: a near-square grid of 2 x 3 tiles of 4x4 with a 1-pixel border, no CSV
    run s1.out -- "$SCORE" sample "$T/png.st" --class light -n 6 --sampler ddim --steps 10 -q \
        --png "$T/g.png"
    check "--png without -o writes no CSV" test ! -s "$T/s1.out"
    check "grid 2 x 3 of 4x4 tiles: 16 x 11 pixels, 8-bit gray" test "$(ihdr "$T/g.png")" = "16 11 8 0"
    run s2.out -- "$SCORE" sample "$T/png.st" -n 5 --sampler ddim --steps 10 -q --png "$T/g2.png" \
        --rows 1 --zoom 3 -o "$T/s2.csv"
    check "--rows 1 --zoom 3: 1 x 5 tiles of 12x12" test "$(ihdr "$T/g2.png")" = "66 14 8 0"
    check "--png with -o: the CSV too" test "$(wc -l <"$T/s2.csv")" -eq 5
    # the grid read back as image data: one 11x16 image
    mkdir "$T/back" && cp "$T/g.png" "$T/back/"
    run back.log -- "$SCORE" train --data "$T/back" --steps 2 --batch 1 --hidden 8 -o "$T/back.st"
    check "grid read back: one image of 11x16" grep -q "1 rows, dim 176" "$T/back.log"
    # the same data as PNG files and as uint8 .npy: the same pixel values, so the same
    # trained network (the rows in the same order: dark then light, by name)
    run png2.log -- "$SCORE" train --data "$T/png" --class-dirs $TR --seed 3 -o "$T/a.st"
    run npy2.log -- "$SCORE" train --data "$T/u8.npy" --labels "$T/labels.npy" $TR --seed 3 -o "$T/b.st"
    run sa.csv -- "$SCORE" sample "$T/a.st" -n 4 --sampler ddim --steps 5 -q
    run sb.csv -- "$SCORE" sample "$T/b.st" -n 4 --sampler ddim --steps 5 -q
    check "PNG directory and .npy of the same pixels: identical samples" cmp -s "$T/sa.csv" "$T/sb.csv"
    # the U-Net trained on the PNG directory, its samples drawn as a grid
    run unet-png.log -- "$SCORE" train --data "$T/png" --class-dirs $UN -o "$T/unet-png.st"
    run unet-g.out -- "$SCORE" sample "$T/unet-png.st" --class light -n 6 --sampler ddim \
        --steps 8 -q --png "$T/unet-g.png"
    check "U-Net: grid 2 x 3 of 4x4 tiles" test "$(ihdr "$T/unet-g.png")" = "16 11 8 0"
    refused 1 "b.png: 1x3x4 pixels of 8 bits, but the first image has 1x4x4" -- "$SCORE" train --data "$T/mixed" -o "$T/x.st" -q
    refused 1 "trunc/b.png: the file is truncated" -- "$SCORE" train --data "$T/trunc" -o "$T/x.st" -q
    refused 1 "holds 2 sub-directories: give --class-dirs" -- "$SCORE" train --data "$T/png" -o "$T/x.st" -q
    printf 'a,b\n1,2\n2,1\n3,3\n' >"$T/x.csv"
    run x-csv.log -- "$SCORE" train --data "$T/x.csv" --steps 5 --hidden 8 -q -o "$T/x-csv.st"
    refused 1 "--png: the model stores no image shape" -- "$SCORE" sample "$T/x-csv.st" --png "$T/x.png" -q
    refused 1 "--png: images of 1x4x3 do not fit the model's dimension 16" -- "$SCORE" sample "$T/png.st" --png "$T/x.png" --image 4x3 -n 2 --sampler ddim --steps 2 -q
else
    n=$((n + 1))
    if grep -q "PNG support is not built" "$T/png.err"; then
        echo "built without libpng: PNG checks skipped, the refusal checked"
        refused 1 "PNG support is not built" -- "$SCORE" sample "$T/u8.st" --png "$T/x.png" -n 2 --sampler ddim --steps 2 -q
    else
        fail "training on the PNG directory"
        sed 's/^/    /' "$T/png.err"
    fi
fi

echo "$((n - fails)) of $n image checks passed"
[ "$fails" -eq 0 ]
