"""How filterviz scales: seconds per filter-step and peak memory against the number of filters, one layer of each
VGG block, and an estimate for a whole model on one machine and on N machines.

    python benchmarks/scale.py                                   # quick: ~10-30 min on 2 cores
    python benchmarks/scale.py --size 128 --steps 30 --layer block4_conv1 --block-steps 30   # the full study

1. Filters: renders 1, 2, 4, ... up to all filters of `--layer` (default block3_conv1, 256 filters, at 32 px and
   10 steps), each point in its own child process, so that its peak memory (RSS high-water mark,
   `resource.getrusage`) is its own. The chunk comes from `--max-memory` as in every render. Seconds are of the
   compiled loop (tracing excluded: the loop is warmed up with one step first) and, apart, of what follows it
   (metrics, grid). Per filter-step cost should be flat from 16 filters to the full layer.
2. Blocks: `--block-filters` filters of the last conv layer of each block at the default preset's size and
   precision ('fast': 128 px, auto), giving each block's seconds per filter-step and achieved GFLOP/s.
3. Estimate: every conv layer of the model with the default preset ('fast', 30 steps), each layer's time from
   its block's measured GFLOP/s and its own FLOPs per filter-step; on N machines, the layers (one sweep job
   each) spread over N machines, the longest first (the makespan). Rescues of dead filters are not included.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
MARK = "SCALE-RESULT "


# -- the child: one measured point ------------------------------------------------------------------------------
def measure(point: dict) -> dict:
    """Render point['filters'] filters of point['layer'] in this process; seconds, memory and FLOPs."""
    import resource

    sys.path.insert(0, HERE)
    from speed import flops_per_filter_step, warm_renderer  # noqa: E402  (benchmarks/speed.py)

    from filterviz.models import load_model
    from filterviz.render import prepare_render, render_plan
    from filterviz.rewrites import graph_cost
    from filterviz.settings import preset

    settings = preset("fast", size=point["size"], steps=point["steps"], max_memory_gb=point["max_memory"],
                      precision=point["precision"], chunk=point.get("chunk"))
    lm = load_model(point["model"])
    plan = prepare_render(lm, point["layer"], f"0:{point['filters']}", settings)
    warm_renderer(plan.renderer, plan.filters)
    rss_ready = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ends = []  # (wall, CPU seconds of all this process's threads) after each chunk
    t0, c0 = time.perf_counter(), time.process_time()
    result = render_plan(plan, on_chunk=lambda part: ends.append((time.perf_counter(), time.process_time())),
                         rescue=False)
    total = time.perf_counter() - t0
    loop, loop_cpu = ends[-1][0] - t0, ends[-1][1] - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    flops = {}  # FLOPs per filter-step of the layers asked for (with this point's settings)
    for layer in point.get("flops_for", []):
        other = plan if layer == point["layer"] else prepare_render(lm, layer, "0:1", settings)
        full = graph_cost(other.renderer.extractor.model, settings.size, lm.channels)[0]
        flops[layer] = [other.renderer.extractor.filters, flops_per_filter_step(other.renderer, lm, full)]
    out = dict(point, chunk=plan.renderer.chunk, precision_used=plan.renderer.precision, loop_s=loop,
               loop_cpu_s=loop_cpu,
               post_s=total - loop, rss_ready_mib=rss_ready, rss_peak_mib=peak,
               layer_filters=plan.renderer.extractor.filters, flops=flops)
    if point.get("npz"):
        out["npz"] = npz_sizes(result)
    return out


def npz_sizes(result) -> dict:
    """Bytes of images.npz as saved (float32 images + uint8 display + small arrays), and with float16 images."""
    import tempfile

    import numpy as np

    from filterviz.results import save_layer

    with tempfile.TemporaryDirectory() as d:
        save_layer(result, d)
        saved = os.path.getsize(os.path.join(d, "images.npz"))
        f16 = os.path.join(d, "f16.npz")
        np.savez_compressed(f16, images=result.images.astype(np.float16), display=result.display,
                            filters=result.filters, activations=result.activations.astype(np.float32),
                            trace=result.trace.astype(np.float32))
        alone = {}
        for name, arr in (("images_float32", result.images.astype(np.float32)), ("display_uint8", result.display),
                          ("images_float16", result.images.astype(np.float16))):
            p = os.path.join(d, name + ".npz")
            np.savez_compressed(p, a=arr)
            alone[name] = os.path.getsize(p)
        return {"saved": saved, "with_float16_images": os.path.getsize(f16), **alone,
                "raw_images_float32": int(result.images.size * 4), "raw_display": int(result.display.size)}


def run_point(point: dict) -> dict:
    """measure(point) in a fresh child process (its own peak memory)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(point)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    lines = [x for x in done.stdout.splitlines() if x.startswith(MARK)]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"point {point} failed (exit {done.returncode})")
    return json.loads(lines[-1][len(MARK):])


# -- the parent: the tables ---------------------------------------------------------------------------------------
def counts_up_to(total: int, largest: int | None) -> list[int]:
    top = min(total, largest or total)
    out, n = [], 1
    while n < top:
        out.append(n)
        n *= 2
    return out + [top]


def filter_study(args, total: int) -> list[str]:
    rows, per = [], {}
    base = dict(model=args.model, layer=args.layer, size=args.size, steps=args.steps, max_memory=args.max_memory,
                precision=args.precision, chunk=args.chunk)
    counts = counts_up_to(total, args.max_filters)
    for n in counts:
        r = run_point(dict(base, filters=n, npz=n == counts[-1] and args.npz))
        fs, cpu = r["loop_s"] / (n * args.steps), r["loop_cpu_s"] / (n * args.steps)
        per[n] = (fs, cpu)
        rows.append(f"| {n} | {r['chunk']} | {r['loop_s']:.2f} | {fs:.5f} | {cpu:.5f} | {r['post_s']:.2f} "
                    f"| {r['rss_ready_mib']:.0f} | {r['rss_peak_mib']:.0f} |")
        print(rows[-1], file=sys.stderr, flush=True)
        if r.get("npz"):
            npz = r["npz"]
    head = [f"### {args.model} {args.layer}: 1 to {counts[-1]} filters, {args.size} px, {args.steps} steps, "
            f"precision {args.precision} (= {r['precision_used']}), --max-memory {args.max_memory} GB",
            "", "| filters | chunk | loop s | s/filter/step | CPU s/filter/step | after-loop s | RSS ready MiB "
            "| peak RSS MiB |", "|---|---|---|---|---|---|---|---|"]
    tail = [""]
    for k, what in ((0, "s/filter/step (wall)"), (1, "CPU s/filter/step (all threads; less hit by other load)")):
        flat = [v[k] for n, v in per.items() if n >= 16]
        if len(flat) >= 2:
            spread = max(flat) / min(flat) - 1
            tail.append(f"{what} from 16 filters to {counts[-1]}: {min(flat):.5f} to {max(flat):.5f}, "
                        f"spread {spread:.0%} ({'flat' if spread <= 0.15 else 'NOT flat'} within 15%)")
    if args.npz:
        tail.append("images.npz of the largest point: " + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in npz.items()))
    return head + rows + tail


def block_study(args, layers_by_block: dict[str, list[str]]) -> tuple[list[str], dict]:
    """The last (heaviest) conv layer of each block at the default preset's size; each block's GFLOP/s and its
    layers' FLOPs (a block's first layer may do so little work that its GFLOP/s says nothing of the others)."""
    from filterviz.settings import preset

    fast = preset("fast")
    rows, rates = [], {}
    for block, layers in layers_by_block.items():
        r = run_point(dict(model=args.model, layer=layers[-1], filters=args.block_filters, size=fast.size,
                           steps=args.block_steps, max_memory=args.max_memory, precision=fast.precision,
                           flops_for=layers))
        n = args.block_filters
        fs = r["loop_s"] / (n * args.block_steps)
        cpu = r["loop_cpu_s"] / (n * args.block_steps)
        flops = r["flops"][layers[-1]][1]
        rates[block] = dict(rate=flops / fs, cpu_rate=flops / cpu, layers=r["flops"])
        rows.append(f"| {layers[-1]} | {n} | {r['chunk']} | {fs:.4f} | {cpu:.4f} | {flops / 1e9:.2f} "
                    f"| {flops / fs / 1e9:.1f} "
                    f"| {r['rss_peak_mib']:.0f} |")
        print(rows[-1], file=sys.stderr, flush=True)
    head = [f"### one layer per block: {args.block_filters} filters, preset fast ({fast.size} px, precision "
            f"{fast.precision} = {r['precision_used']}), {args.block_steps} steps timed",
            "", "| layer | filters | chunk | s/filter/step | CPU s/filter/step | GFLOP/filter-step | achieved GFLOP/s "
            "| peak RSS MiB |", "|---|---|---|---|---|---|---|---|"]
    return head + rows + [""], rates


def makespan(jobs: dict[str, float], machines: int) -> float:
    """Seconds until the last of `jobs` (seconds each) is done on `machines`, each job to the least loaded
    machine, the longest first."""
    load = [0.0] * machines
    for s in sorted(jobs.values(), reverse=True):
        load[load.index(min(load))] += s
    return max(load)


def estimate(args, rates: dict) -> list[str]:
    """The whole model with preset fast: per layer, filters x steps x FLOPs / its block's GFLOP/s; N machines."""
    from filterviz.settings import preset

    steps, cores = preset("fast").steps, len(os.sched_getaffinity(0))
    jobs = {layer: n * steps * f / b["rate"] for b in rates.values() for layer, (n, f) in b["layers"].items()}
    idle = {layer: n * steps * f / b["cpu_rate"] / cores for b in rates.values()
            for layer, (n, f) in b["layers"].items()}
    filters = sum(n for b in rates.values() for n, _ in b["layers"].values())
    lines = [f"### estimate: all {len(jobs)} conv layers of {args.model} ({filters} filters), preset fast "
             f"({steps} steps), compiled loop only", "",
             "| machines | hours at the measured wall rate (layers as jobs, longest first) | the same, perfectly "
             f"divisible | hours from CPU time / {cores} cores (this machine unloaded), layers as jobs |",
             "|---|---|---|---|"]
    for m in args.machines:
        lines.append(f"| {m} | {makespan(jobs, m) / 3600:.2f} | {sum(jobs.values()) / m / 3600:.2f} "
                     f"| {makespan(idle, m) / 3600:.2f} |")
    longest = max(jobs, key=jobs.get)
    lines += ["", f"longest job: {longest} ({jobs[longest] / 3600:.2f} h); split a layer's filters into several jobs "
              "(sweep: filters: ['0:256', '256:512']) to use more machines than layers", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vgg16-hed")
    p.add_argument("--layer", default="block3_conv1", help="the layer of the filter study (default block3_conv1)")
    p.add_argument("--size", type=int, default=32, help="image size of the filter study (default 32)")
    p.add_argument("--steps", type=int, default=10, help="steps of the filter study (default 10)")
    p.add_argument("--max-filters", type=int, default=None, help="largest point (default: the whole layer)")
    p.add_argument("--max-memory", type=float, default=2.0, help="GB of activations per batch (default 2)")
    p.add_argument("--chunk", type=int, default=None, help="filters per batch of the filter study (default: from "
                   "--max-memory, as in every render)")
    p.add_argument("--precision", default="auto", help="precision of the filter study (default auto)")
    p.add_argument("--block-filters", type=int, default=16, help="filters per block layer (default 16)")
    p.add_argument("--block-steps", type=int, default=5, help="steps timed per block layer (default 5)")
    p.add_argument("--machines", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4, 8, 13])
    p.add_argument("--npz", action="store_true", help="also measure images.npz of the largest point")
    p.add_argument("--skip-filters", action="store_true", help="only the blocks and the estimate")
    p.add_argument("--skip-blocks", action="store_true", help="only the filter study")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(MARK + json.dumps(measure(json.loads(args.child))))
        return 0

    sys.path.insert(0, HERE)
    from filterviz.precision import cpu_model

    from filterviz.models import load_model, visual_layers

    lm = load_model(args.model)
    infos = [i for i in visual_layers(lm) if "Conv" in i.kind]  # as a sweep's 'all-conv'

    by_block: dict[str, list[str]] = {}
    for info in infos:
        by_block.setdefault(info.name.split("_")[0], []).append(info.name)
    print(f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"CPU: {cpu_model()} ({len(os.sched_getaffinity(0))} cores usable)")
    print(f"command: python benchmarks/scale.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    print()
    if not args.skip_filters:
        total = next(i.filters for i in infos if i.name == args.layer)
        print("\n".join(filter_study(args, total)), flush=True)
    if not args.skip_blocks:
        lines, rates = block_study(args, by_block)
        print("\n".join(lines + estimate(args, rates)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
