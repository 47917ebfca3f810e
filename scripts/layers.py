#!/usr/bin/env python3
"""Checks the library's layering (docs/architecture.md): a module may use only modules of its own
layer or of layers before it. Prints each upward use with file and line; exit 1 if any.
Test code (after a `#[cfg(test)]` line, and files named *tests.rs / *_test.rs) is not checked."""
import pathlib, re, sys

LAYERS = [
    {"backend", "error", "fault", "rng", "stats", "torch_init", "torch_rng"},
    {"data"}, {"views"}, {"encoders"}, {"heads"}, {"objectives"}, {"methods"},
    {"train"}, {"eval"}, {"recipe"}, {"run"}, {"study"}, {"bench"},
]
layer_of = {m: i for i, ms in enumerate(LAYERS) for m in ms}
root = pathlib.Path(__file__).resolve().parent.parent / "crates/selfsup/src"
bad = []
for f in sorted(root.rglob("*.rs")):
    rel = f.relative_to(root)
    top = rel.parts[0].removesuffix(".rs")
    if top == "lib" or top not in layer_of:
        continue
    if re.search(r"(tests|_test)\.rs$", f.name):
        continue
    for n, line in enumerate(f.read_text().splitlines(), 1):
        if line.strip().startswith("#[cfg(test)]"):
            break
        if line.strip().startswith("//"):
            continue
        for m in re.findall(r"crate::([a-z_]+)", line):
            if m in layer_of and layer_of[m] > layer_of[top]:
                bad.append(f"{rel}:{n}: {top} (layer {layer_of[top]}) uses {m} (layer {layer_of[m]})")
print("\n".join(bad) if bad else "layers: no module uses one above it")
sys.exit(1 if bad else 0)
