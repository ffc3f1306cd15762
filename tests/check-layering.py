#!/usr/bin/env python3
"""Checks the include rule of src/ (doc/architecture.md): a source file includes the private
headers of its own layer and of the layers below it, never of a layer above, and never the
internals of one model kind or of the step types (FOLDER_ONLY) from another folder. The layer order
is the one of doc/architecture.md, bottom first; io (the safetensors reader and writer, the
crash-safe file store) is a utility just above core."""
import pathlib
import re
import sys

LAYERS = ["core", "io", "kernel", "rng", "schedule", "model", "sde", "loss", "train",
          "sampler", "likelihood", "genmodel"]
RANK = {name: i for i, name in enumerate(LAYERS)}
# Headers private to their own folder: the internals of one model kind or of the step types.
FOLDER_ONLY = {"model/mlp-priv.h", "model/mlp-kind-priv.h", "model/analytic-priv.h",
               "sampler/step-priv.h"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def main(src):
    src = pathlib.Path(src)
    bad = []
    folders = sorted(p.name for p in src.iterdir() if p.is_dir())
    for name in folders:
        if name not in RANK:
            bad.append(f"src/{name}/: a folder that is no layer of the list in this script")
    for path in sorted(src.rglob("*.[ch]")):
        own = path.parent.name
        if own not in RANK:
            continue
        for inc in INCLUDE.findall(path.read_text(encoding="utf-8")):
            parts = inc.split("/")
            if len(parts) != 2 or parts[0] == "libscore":
                continue  # same folder, or a public header
            layer = parts[0]
            if layer not in RANK:
                bad.append(f"{path.relative_to(src.parent)}: includes {inc} (unknown layer)")
            elif inc in FOLDER_ONLY and layer != own:
                bad.append(f"{path.relative_to(src.parent)}: includes {inc}, which is private "
                           f"to src/{layer}/")
            elif RANK[layer] > RANK[own]:
                bad.append(f"{path.relative_to(src.parent)}: includes {inc}, a header of the "
                           f"{layer} layer, which is above {own}")
    for line in bad:
        print(line)
    print(f"{len(bad)} violation(s) of the layering rule")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
