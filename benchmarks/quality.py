"""Does every filter's picture beat natural photos? Every preset, candidate settings and the Keras example's
algorithm, scored side by side against many crops of several offline photos (issue 15).

    python benchmarks/quality.py                          # 5 layers of vgg16-hed, filters 0:16, 128 and 224 px
    python benchmarks/quality.py --layers block2_conv2 --filters 0:8 --sizes 96
    python benchmarks/quality.py --presets lucid --candidate "f64=preset:lucid,objective:fired,steps:64"
    python benchmarks/quality.py --presets "" --no-keras --candidate "grey=preset:lucid,colour:1,colour_limit:70"

A candidate is name=field:value,... of RenderSettings fields; a first item preset:NAME starts from that preset.
objective:mean|fired|top sets the settings' own objective field. Three more keys replace its main term by a tuned
one: share:S (the map's top share for fired and top, default 0.05), top:W (fired's weight on it, default 0.1) and
pre:W (plus W x the plain mean, default 0); see filterviz.objectives.channel_fired. The settings' regularizers and
specificity are kept.

Every picture is scored as the grid shows it (uint8, back in model-input space). Columns, medians over filters:
failed = share of filters whose picture excites the filter less than the best photo crop does; ratio = picture /
best crop (mean post-ReLU over the map, 2-pixel border left out; metrics.photo_ratio); robust = activation kept
under small shifts and zooms (metrics.quality_metrics); hf = share of spectral power above 0.25 cycles/pixel;
edge = frame/vignette score (metrics.edge_score); colour = colourfulness; spread = palette spread of the layer
(metrics.palette_spread, one number per layer); s/filter = wall seconds per filter (tracing, rescue and metrics
included); x lucid = s/filter over lucid's at the same layer and size. The photos' row scores the crops themselves
(for each filter, its best crop's robustness). Grids and a JSON of every number go to --out.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from filterviz import grid, metrics, objectives  # noqa: E402
from filterviz.precision import cpu_model  # noqa: E402
from filterviz.ascent import build_objective  # noqa: E402
from filterviz.files import ensure_dir, write_json, write_png  # noqa: E402
from filterviz.models import feature_extractor, load_model  # noqa: E402
from filterviz.render import prepare_render, render_plan  # noqa: E402
from filterviz.settings import PRESETS, SCHEMA, RenderSettings  # noqa: E402

LAYERS = "block1_conv2,block2_conv2,block3_conv3,block4_conv3,block5_conv3"
# The Keras example ("Visualizing what convnets learn"): raw pixels, 30 steps, lr 10, l2-normalized gradient.
KERAS_EXAMPLE = RenderSettings(param="pixel", optimizer="normalized", transforms="none", steps=30, lr=10.0)
COLUMNS = ("config", "failed", "ratio", "robust", "hf", "edge", "colour", "spread", "s/filter", "x lucid")
OBJECTIVE_KEYS = ("share", "top", "pre")
PLAIN = {"share": 0.05, "top": 0.1, "pre": 0.0}  # the objective field's own terms: no custom objective


def parse_candidate(text: str) -> tuple[str, RenderSettings, dict]:
    """name=field:value,... -> (name, settings, objective choice {share, top, pre})."""
    name, _, body = text.partition("=")
    base, fields, choice = RenderSettings(), {}, dict(PLAIN)
    for item in filter(None, body.split(",")):
        key, _, value = item.partition(":")
        if key == "preset":
            base = PRESETS[value]
        elif key in OBJECTIVE_KEYS:
            choice[key] = float(value)
        else:
            kind = SCHEMA[key].kind
            fields[key] = (None if value == "None" else value if kind is str else value == "true" if kind is bool
                           else kind(value))
    return name, base.replace(**fields), choice


def custom_objective(lm, layer: str, settings: RenderSettings, choice: dict) -> objectives.Objective | None:
    """The settings' objective with its main term replaced by one with the chosen share, top and pre; None = keep."""
    if choice == PLAIN:
        return None
    natural = None
    if settings.specificity:
        pre = feature_extractor(lm, layer, pre_activation=True)
        natural = metrics.natural_means(pre.model, settings.size, lm.channels, relu=True)
    main = (objectives.channel_top(choice["share"]) if settings.objective == "top"
            else objectives.channel_fired(settings.border, choice["share"], choice["top"]))
    plain = objectives.channel(settings.border)
    return build_objective(settings.replace(objective="mean"), natural) - plain + main + choice["pre"] * plain


def score(post, shown: np.ndarray, display: np.ndarray, filters: np.ndarray, best: np.ndarray) -> dict:
    """Per-filter numbers of one layer's pictures against the best crops."""
    q = metrics.quality_metrics(post, shown, display, filters, batch=16)
    return {
        "ratio": metrics.photo_ratio(post.model, shown, filters, best),
        "robust": q["robustness"], "hf": q["hf_share"], "colour": q["colourfulness"],
        "edge": metrics.edge_score(display), "spread": metrics.palette_spread(display),
    }


def photos_row(post, crops: np.ndarray, filters: np.ndarray, best: np.ndarray) -> dict:
    """The crops' own numbers: each filter's best crop for ratio and robustness, all crops for the rest."""
    acts = metrics.inner_means(post.model, crops, batch=16)
    top = crops[acts[:, filters].argmax(axis=0)]
    q = metrics.quality_metrics(post, top, top.astype(np.uint8), filters, batch=16)
    every = crops.astype(np.uint8)
    return {
        "ratio": np.ones(len(filters)), "robust": q["robustness"], "hf": metrics.hf_share(every),
        "colour": metrics.colourfulness(every), "edge": metrics.edge_score(every),
        "spread": metrics.palette_spread(every),
    }


def render(lm, layer: str, filters: str, settings: RenderSettings, choice: dict, rescue: bool):
    """One configuration's pictures and wall seconds (building the loop included)."""
    t0 = time.perf_counter()
    plan = prepare_render(lm, layer, filters, settings, objective=custom_objective(lm, layer, settings, choice))
    res = render_plan(plan, rescue=rescue)
    return res, time.perf_counter() - t0


def row(name: str, m: dict, seconds: float | None, n: int, lucid: float | None) -> dict:
    per = None if seconds is None else seconds / n
    return {
        "config": name, "failed": float(np.mean(m["ratio"] < 1.0)), "ratio": float(np.median(m["ratio"])),
        "robust": metrics.median_defined(m["robust"]), "hf": float(np.median(m["hf"])), "edge": float(np.median(m["edge"])),
        "colour": float(np.median(m["colour"])), "spread": float(m["spread"]), "s/filter": per,
        "x lucid": None if per is None or not lucid else per / lucid,
        "per_filter": {k: np.asarray(v).tolist() for k, v in m.items() if k != "spread"},
    }


def markdown(rows: list[dict]) -> str:
    def cell(k: str, v) -> str:
        if v is None:
            return "-"
        if k == "failed":
            return f"{100 * v:.0f}%"
        return {"config": "{}", "ratio": "{:.2f}", "robust": "{:.3f}", "hf": "{:.4f}", "edge": "{:.2f}",
                "colour": "{:.0f}", "spread": "{:.0f}", "s/filter": "{:.2f}", "x lucid": "{:.2f}"}[k].format(v)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(k, r[k]) for k in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def configs(args) -> list[tuple[str, RenderSettings, dict, bool]]:
    """(name, settings, objective choice, rescue) of every configuration to run."""
    out = [] if args.no_keras else [("keras-example", KERAS_EXAMPLE, PLAIN, False)]
    out += [(n, PRESETS[n], PLAIN, True) for n in args.presets.split(",") if n]
    out += [(*parse_candidate(c), True) for c in args.candidate]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vgg16-hed")
    p.add_argument("--layers", default=LAYERS)
    p.add_argument("--filters", default="0:16")
    p.add_argument("--sizes", default="128,224")
    p.add_argument("--presets", default=",".join(PRESETS), help="comma-separated; empty for none")
    p.add_argument("--candidate", action="append", default=[], help="name=field:value,... (see above)")
    p.add_argument("--no-keras", action="store_true", help="leave out the Keras example's algorithm")
    p.add_argument("--out", default="outputs/benchmarks/quality")
    args = p.parse_args(argv)

    todo = configs(args)
    lm = load_model(args.model)
    out = ensure_dir(args.out)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    print(f"# quality benchmark, {stamp}; {cpu_model()}; TensorFlow {tf.__version__}; model {args.model}, "
          f"filters {args.filters}; {len(todo)} configurations", flush=True)
    report = {"date": stamp, "cpu": cpu_model(), "model": args.model, "filters": args.filters, "tables": []}
    for size in (int(s) for s in args.sizes.split(",")):
        crops = metrics.photo_crops(size, lm.channels)
        for layer in args.layers.split(","):
            post = feature_extractor(lm, layer, pre_activation=False)
            best = metrics.best_photo_activation(post.model, crops, batch=16)
            rows, lucid = [], None
            for name, settings, choice, rescue in todo:
                settings = settings.replace(size=size)
                res, sec = render(lm, layer, args.filters, settings, choice, rescue)
                write_png(out / f"{size}__{layer}__{name}.png", res.grid)
                shown = grid.to_model_space(res.display, lm.input_range)
                lucid = sec / len(res.filters) if name == "lucid" else lucid
                rows.append(row(name, score(post, shown, res.display, res.filters, best), sec, len(res.filters), lucid))
                print(f"{size} {layer} {name}: {sec:.0f} s", file=sys.stderr, flush=True)
            for r in rows:  # lucid may come after a configuration
                r["x lucid"] = r["s/filter"] / lucid if lucid else None
            rows.append(row(f"photos ({len(crops)} crops)", photos_row(post, crops, res.filters, best), None, 1, None))
            print(f"\n## {layer}, {size} px\n\n{markdown(rows)}", flush=True)
            report["tables"].append({"layer": layer, "size": size, "filters": res.filters.tolist(), "rows": rows})
            write_json(out / "quality.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
