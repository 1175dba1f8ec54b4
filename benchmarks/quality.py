"""Picture quality and seconds of each preset against the Keras example's algorithm, side by side.

    python benchmarks/quality.py                                   # block3_conv1, block4_conv1; 16 filters; 128 px
    python benchmarks/quality.py --layers block2_conv1 --filters 0:8 --size 96
    python benchmarks/quality.py --candidate "f48=param:fourier,optimizer:adam,lr:0.05,transforms:standard,steps:48"
    python benchmarks/quality.py --presets quality --candidate "grey=preset:quality,chroma:0.5"

Every configuration renders the same filters of the same layers in one process, and the table reports the
medians of the per-filter metrics of `filterviz.metrics` (computed on the displayed pictures). Grids go to
--out (default outputs/benchmarks/quality/) for looking at side by side.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from filterviz.ascent import PRESETS, RenderSettings, render_layer  # noqa: E402
from filterviz.metrics import natural_crops, quality_metrics  # noqa: E402
from filterviz.models import feature_extractor, load_model  # noqa: E402
from filterviz.files import ensure_dir, write_png  # noqa: E402

# The Keras example ("Visualizing what convnets learn"): raw pixels, 30 steps, lr 10, l2-normalized gradient.
BASELINE = RenderSettings(param="pixel", optimizer="normalized", transforms="none", steps=30, lr=10.0)


def parse_candidate(text: str) -> tuple[str, RenderSettings]:
    """name=field:value,... ; a first item preset:NAME starts from that preset instead of the defaults."""
    name, _, body = text.partition("=")
    base, fields = RenderSettings(), {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition(":")
        if key == "preset":
            base = PRESETS[value]
            continue
        kind = type(getattr(RenderSettings(), key))
        fields[key] = value if kind is str or value in ("None",) else kind(value) if kind is not bool else value == "true"
    return name, base.replace(**fields)


def natural_row(lm, layer: str, filters: np.ndarray, size: int) -> tuple[str, ...]:
    """The same metrics for the crops of the sample photo, as a reference: how robust natural pictures are."""
    post = feature_extractor(lm, layer, pre_activation=False)
    crops = natural_crops(size, lm.channels)
    rob, act = [], []
    for f in filters:
        q = quality_metrics(post, crops, crops.astype(np.uint8), np.full(len(crops), f, np.int32), batch=len(crops))
        rob.append(np.median(q["robustness"]))
        act.append(np.median(q["activation"]))
    hf, colour = float(np.median(q["hf_share"])), float(np.median(q["colourfulness"]))
    return (layer, "natural photo crops", "-", "-", "-", f"{np.median(act):.1f}", "-", f"{np.median(rob):.3f}",
            f"{hf:.4f}", f"{colour:.0f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vgg16-hed")
    p.add_argument("--layers", default="block3_conv1,block4_conv1")
    p.add_argument("--filters", default="0:16")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--presets", default=",".join(PRESETS))
    p.add_argument("--candidate", action="append", default=[], help="name=field:value,... (extra settings)")
    p.add_argument("--out", default="outputs/benchmarks/quality")
    args = p.parse_args(argv)

    configs = [("keras-example", BASELINE)] + [(n, PRESETS[n]) for n in args.presets.split(",") if n]
    configs += [parse_candidate(c) for c in args.candidate]
    lm = load_model(args.model)
    out = ensure_dir(args.out)
    cols = ("layer", "config", "seconds", "s/filter", "dead", "activation", "spec_rank", "robustness", "hf_share",
            "colourfulness")
    rows = []
    for layer in args.layers.split(","):
        for name, settings in configs:
            settings = settings.replace(size=args.size)
            t0 = time.perf_counter()
            res = render_layer(lm, layer, args.filters, settings)
            sec = time.perf_counter() - t0
            write_png(out / f"{layer}__{name}.png", res.grid)
            m = {k: np.median([r[k] for r in res.metrics])
                 for k in ("activation", "specificity_rank", "robustness", "hf_share", "colourfulness")}
            row = (layer, name, f"{sec:.1f}", f"{sec / len(res.filters):.2f}", str(sum(r["dead"] for r in res.metrics)),
                   f"{m['activation']:.1f}", f"{m['specificity_rank']:.1f}", f"{m['robustness']:.3f}", f"{m['hf_share']:.4f}",
                   f"{m['colourfulness']:.0f}")
            rows.append(row)
            print(" | ".join(row), file=sys.stderr, flush=True)
        rows.append(natural_row(lm, layer, res.filters, args.size))
    print(f"\nmodel {args.model}, filters {args.filters}, {args.size} px; medians over filters; spec_rank: 1 is best")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    by = {(r[0], r[1]): r for r in rows}
    for layer in args.layers.split(","):
        base = by.get((layer, "keras-example"))
        for name, _ in configs[1:]:
            r = by.get((layer, name))
            if base and r:
                hf = float(r[8]) / max(float(base[8]), 1e-12)
                t = float(r[2]) / max(float(by.get((layer, "fast"), base)[2]), 1e-9)
                print(f"{layer} {name}: hf_share / keras-example = {hf:.3f}; seconds / fast = {t:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
