"""Seconds of filterviz against the Keras example's per-filter loop, and both against the machine's conv throughput.

    python benchmarks/speed.py                                     # vgg16-hed block3_conv1,block4_conv1; 16 filters; 128 px; 30 steps
    python benchmarks/speed.py --filters 0:4 --steps 10 --size 64  # a quick check
    python benchmarks/speed.py --xla --repeats 3                   # also filterviz with jit_compile=True
    python benchmarks/speed.py --device /GPU:0                     # the same on a GPU
    python benchmarks/speed.py --profile                           # also where filterviz's step time goes, by op
    python benchmarks/speed.py --also-precision float32,mixed_bfloat16   # what 'auto' chose against the others

Everything runs in one process on the same filters, size and steps. The runs of the approaches are
interleaved (filterviz, baseline, filterviz, ...) so that noise from other processes hits them alike, and
the median of --repeats runs is reported. Tracing and the first call are timed separately ("warm-up") and
excluded from the medians.

The baseline is the algorithm of the Keras example "Visualizing what convnets learn": a Python loop over the
filters, each running `steps` calls of a `tf.function` gradient-ascent step on one image kept in a
tf.Variable (gradient of the filter's mean pre-activation, l2-normalized, lr 10). It starts from the same
seeded images as filterviz and uses the same extractor, so both do the same arithmetic; the last column is
the largest relative L2 difference of their pictures (per filter) as a check. It is tiny for few steps and
grows with steps and lr, presumably because the ascent amplifies the rounding differences between a batched
and a single-image convolution; under mixed precision it is large. Unlike the example, the filter index is
passed as a tensor so that one trace serves every filter (the example retraces per filter, which would only
make the baseline slower).

FLOPs per filter-step are forward + input-gradient backward, taken as 2x the forward FLOPs that
`filterviz.rewrites.graph_cost` counts on the traced graph, of the work each approach really does: the loop and
"filterviz, full layer" compute every filter of the target layer; "filterviz" (the default) computes only
each image's own filter there (models.ChannelHead); "coarse" runs a share of the steps at half size. The measured conv throughput is a large 3x3 conv2d
forward and input-gradient backward in a `tf.function` (the same kind of work the ascent does).
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from filterviz.ascent import LayerRenderer  # noqa: E402
from filterviz.precision import BF16_FLAGS, cpu_flags, cpu_model, resolve_precision  # noqa: E402
from filterviz.settings import RenderSettings, select_filters  # noqa: E402
from filterviz.models import feature_extractor, load_model  # noqa: E402
from filterviz.rewrites import graph_cost  # noqa: E402


def peak_rss_mib() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return kb / (2**20 if sys.platform == "darwin" else 2**10)


class ConvProbe:
    """A 3x3 'same' conv2d forward + input-gradient backward in a tf.function; `measure()` gives its FLOP/s."""

    def __init__(self, batch: int, size: int, cin: int, cout: int, dtype: str = "float32"):
        self.shape = (batch, size, cin, cout)
        self.dtype = dtype
        self.x = tf.Variable(tf.cast(tf.random.normal([batch, size, size, cin]), dtype))
        self.w = tf.Variable(tf.cast(tf.random.normal([3, 3, cin, cout], stddev=0.05), dtype))
        self.flops = 2 * (2.0 * batch * size * size * cout * 9 * cin)  # forward + input gradient
        self.step = tf.function(self._step)
        self.step().numpy()  # trace + warm-up

    def _step(self):
        with tf.GradientTape() as tape:
            tape.watch(self.x)
            y = tf.nn.conv2d(self.x, self.w, 1, "SAME")
            loss = tf.reduce_sum(y)
        return tape.gradient(loss, self.x)[0, 0, 0, 0] + loss  # a scalar that needs both passes

    def measure(self, repeats: int = 2) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.step().numpy()
            times.append(time.perf_counter() - t0)
        return self.flops / min(times)


class KerasExampleLoop:
    """The Keras example's algorithm: one image at a time, a tf.function step called from Python."""

    def __init__(self, extractor, size: int, channels: int, input_range, lr: float, seed: int):
        self.model = extractor.model
        self.lo, self.hi = input_range
        self.size, self.channels, self.lr, self.seed = size, channels, lr, seed
        self.img = tf.Variable(tf.zeros([1, size, size, channels]), trainable=False)
        self.step = tf.function(
            self._step, input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.float32)]
        )

    def _loss(self, filter_index):
        activation = self.model(self.lo + (self.hi - self.lo) * self.img, training=False)
        return tf.reduce_mean(activation[..., filter_index])

    def _step(self, filter_index, learning_rate):
        with tf.GradientTape() as tape:
            tape.watch(self.img)
            loss = self._loss(filter_index)
        grads = tape.gradient(loss, self.img)
        grads = tf.math.l2_normalize(grads)
        self.img.assign_add(learning_rate * grads)
        return loss

    def init(self, f: int) -> None:
        # the same start image as filterviz's pixel parameterization: 0.5 + N(0, 0.05) seeded by (seed, filter)
        seed = tf.constant([self.seed, f], tf.int32)
        self.img.assign(0.5 + tf.random.stateless_normal([1, self.size, self.size, self.channels], seed, stddev=0.05))

    def render(self, filters, steps: int) -> np.ndarray:
        lr = tf.constant(self.lr, tf.float32)
        out = []
        for f in filters:
            self.init(int(f))
            fi = tf.constant(int(f), tf.int32)
            for _ in range(steps):
                loss = self.step(fi, lr)
            loss.numpy()
            out.append(self.lo + (self.hi - self.lo) * self.img.numpy()[0])
        return np.stack(out)


def warm_renderer(renderer: LayerRenderer, filters: np.ndarray) -> None:
    """Trace and run the renderer's compiled pieces once, with one step, so the timed renders exclude tracing."""
    ids = np.concatenate([filters, np.repeat(filters[-1:], renderer.batch)])[: renderer.batch].astype(np.int32)
    try:
        ids_t = tf.constant(ids)
        renderer.loop.init_fn(ids_t)
        for fn in renderer.loop.segment_fns.values():  # one compiled loop per resolution
            fn(ids_t, tf.constant(0), tf.constant(1), tf.constant(1e-3, tf.float32)).numpy()
        renderer.loop.final_fn(ids_t)[1].numpy()
    except AttributeError:  # an older engine without renderer.loop: warm up with a full render
        renderer.render(filters)


def flops_per_filter_step(renderer: LayerRenderer, lm, full_fwd: float) -> float:
    """FLOPs one filter-step really costs this renderer: forward + input-gradient backward (2x forward), of the
    full layer or, with the single-channel head, of the trunk plus one filter; coarse steps at half size."""
    size = renderer.settings.size

    def forward(sz: int) -> float:
        if not renderer.single_channel:
            return full_fwd if sz == size else graph_cost(renderer.extractor.model, sz, lm.channels)[0]
        head = renderer.extractor.head
        trunk, _ = graph_cost(head.trunk, sz, lm.channels)
        one = graph_cost(renderer.extractor.model, sz, lm.channels)[0] - trunk  # the target layer, all filters
        return trunk + one / renderer.extractor.filters

    share = renderer.loop.coarse_steps / renderer.settings.steps
    return 2.0 * ((1 - share) * forward(size) + (share * forward(size // 2) if share else 0.0))


OP_GROUPS = (  # (group, substrings of TensorFlow op types), first match wins
    ("conv forward", ("FusedConv2D", "Conv2D", "DepthwiseConv2dNative")),
    ("conv input gradient", ("Conv2DBackpropInput", "DepthwiseConv2dNativeBackpropInput")),
    ("ReLU gradient", ("ReluGrad",)),
    ("max-pool forward + gradient", ("MaxPool",)),
    ("transposes, casts", ("Transpose", "Cast")),
)


def op_profile(renderer: LayerRenderer, filters: np.ndarray) -> list[str]:
    """Run one compiled segment of the renderer under the TensorFlow profiler and return lines with the share
    of op time per group (OP_GROUPS), and whether a max-pool gradient ran in TensorFlow's own (Eigen) kernel
    instead of oneDNN's, which happens in some processes under bfloat16 and costs much time."""
    import glob
    import shutil
    import tempfile

    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    ids = tf.constant(np.concatenate([filters, np.repeat(filters[-1:], renderer.batch)])[: renderer.batch]
                      .astype(np.int32))
    fn = renderer.loop.segment_fns[False]
    args = (ids, tf.constant(0), tf.constant(renderer.settings.segment), tf.constant(1e-3, tf.float32))
    fn(*args).numpy()
    logdir = tempfile.mkdtemp(prefix="filterviz-profile-")
    try:
        tf.profiler.experimental.start(logdir)
        t0 = time.perf_counter()
        fn(*args).numpy()
        wall = time.perf_counter() - t0
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0], "rb") as f:
            space.ParseFromString(f.read())
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    groups = {g: 0.0 for g, _ in OP_GROUPS} | {"other ops": 0.0}
    others: dict[str, float] = {}
    eigen_pool_grad = 0
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for ev in line.events:
                name = plane.event_metadata[ev.metadata_id].name
                if ":" not in name:
                    continue  # thread-pool bookkeeping, not an op
                op = name.rsplit(":", 1)[1]
                if op in ("Process", "ParallelFor", "While", "StatefulPartitionedCall", "PartitionedCall"):
                    continue  # executor and container events: the ops inside them are counted themselves
                if op == "MaxPoolGrad":
                    eigen_pool_grad += 1
                key = "other ops"
                for g, parts in OP_GROUPS:
                    if any(p in op for p in parts) and not (g == "conv forward" and "Backprop" in op):
                        key = g
                        break
                groups[key] += ev.duration_ps / 1e12
                if key == "other ops":
                    others[op] = others.get(op, 0.0) + ev.duration_ps / 1e12
    total = sum(groups.values())
    out = [f"op time in one segment of {renderer.settings.segment} steps ({wall:.2f} s wall, {total:.2f} s in ops): "
           + ", ".join(f"{g} {v / total:.0%}" for g, v in groups.items())
           + " (largest other: " + ", ".join(f"{k} {v / total:.0%}" for k, v in
                                             sorted(others.items(), key=lambda kv: -kv[1])[:3]) + ")"]
    if eigen_pool_grad:
        out.append(f"note: {eigen_pool_grad} max-pool gradients ran in TensorFlow's Eigen kernel, not oneDNN's "
                   "(TensorFlow's rewrite does this in some processes; filterviz's loop avoids it where "
                   "graphs.onednn_max_pool_available(), so this run is slower than it should be)")
    return out


def compute_dtype(precision: str) -> str:
    return {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}.get(precision, "float32")


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def fmt_s(x: float) -> str:
    return f"{x:.2f}" if x >= 1 else f"{x:.3f}"


def bench_layer(lm, layer: str, args, probes: dict[str, ConvProbe]) -> list[str]:
    extractor = feature_extractor(lm, layer, pre_activation=True)
    filters = select_filters(args.filters, extractor.filters, layer)
    n, steps, size = len(filters), args.steps, args.size
    fwd_flops, _ = graph_cost(extractor.model, size, lm.channels)
    step_flops = 2.0 * fwd_flops
    base = RenderSettings(size=size, steps=steps, lr=args.lr, seed=args.seed, chunk=args.chunk,
                          max_memory_gb=args.max_memory, precision=args.precision)
    configs = [("filterviz, full layer", base, False), ("filterviz", base, True)]
    if args.xla:
        configs.append(("filterviz xla", base.replace(xla=True), True))
    for share in args.coarse:
        configs.append((f"filterviz coarse {share:g}", base.replace(coarse=share), True))
    for precision in args.also_precision:
        configs.append((f"filterviz {precision}", base.replace(precision=precision), True))

    runners = {}
    for name, settings, single in configs:
        r = LayerRenderer(extractor, settings, channels=lm.channels, input_range=lm.input_range, max_filters=n,
                          single_channel=single)
        warm, _ = timed(lambda r=r: warm_renderer(r, filters))
        runners[name] = (r, warm)
    loop = KerasExampleLoop(extractor, size, lm.channels, lm.input_range, args.lr, args.seed)
    loop.init(int(filters[0]))
    warm, _ = timed(lambda: loop.step(tf.constant(int(filters[0])), tf.constant(1e-3)).numpy())
    runners["keras-example loop"] = (loop, warm)

    times = {name: [] for name in runners}
    images = {}
    conv_runs = []
    for _ in range(args.repeats):
        # interleaved too: the machine's throughput drifts with its load
        conv_runs.append({k: p.measure() for k, p in probes.items()})
        for name, (r, _) in runners.items():
            if isinstance(r, KerasExampleLoop):
                t, out = timed(lambda r=r: r.render(filters, steps))
            else:
                t, out = timed(lambda r=r: r.render(filters).images)
            times[name].append(t)
            images[name] = out
    rss = peak_rss_mib()

    base_s = statistics.median(times["keras-example loop"])
    conv_fps = {k: statistics.median(run[k] for run in conv_runs) for k in probes}
    probe = probes["float32"]
    rows = []
    for name, (r, warm) in runners.items():
        med = statistics.median(times[name])
        done = flops_per_filter_step(r, lm, fwd_flops) if isinstance(r, LayerRenderer) else step_flops
        achieved = done * n * steps / med
        ref = images["keras-example loop"]  # relative L2 difference per filter, the largest
        diff = float(np.max(np.linalg.norm((images[name] - ref).reshape(n, -1), axis=1)
                            / np.maximum(np.linalg.norm(ref.reshape(n, -1), axis=1), 1e-12)))
        chunk = r.chunk if isinstance(r, LayerRenderer) else 1
        dtype = compute_dtype(r.precision) if isinstance(r, LayerRenderer) else "float32"
        rows.append(
            f"| {name} | {chunk} | {fmt_s(warm)} | {fmt_s(med)} | {med / (n * steps):.4f} | {base_s / med:.2f} "
            f"| {done / 1e9:.2f} | {achieved / 1e9:.1f} | {achieved / conv_fps[dtype]:.2f} ({dtype}) | {diff:.3g} |"
        )
    head = [
        f"### {lm.name} {layer}: {n} filters, {size} px, {steps} steps, {args.precision}, "
        f"median of {args.repeats}, peak RSS {rss:.0f} MiB",
        "",
        f"measured conv throughput (batch {probe.shape[0]}, {probe.shape[1]}x{probe.shape[1]}x{probe.shape[2]} -> "
        f"{probe.shape[3]}, 3x3, forward + input gradient; median of {len(conv_runs)}, each the best of 2): "
        + ", ".join(f"{conv_fps[k] / 1e9:.1f} GFLOP/s in {k}" for k in probes),
        "",
        "| approach | chunk | warm-up s | s | s/filter/step | speed-up vs loop | GFLOP/filter-step done "
        "| achieved GFLOP/s | achieved / measured conv | rel. diff vs loop |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows.append("")
    if args.profile:
        rows += op_profile(runners["filterviz"][0], filters) + [""]
    return head + rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vgg16-hed")
    p.add_argument("--layers", default="block3_conv1,block4_conv1")
    p.add_argument("--filters", default="0:16", help="'all', a range A:B (end exclusive) or a list i,j,k")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--lr", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=None, help="filters per batch (default: from --max-memory)")
    p.add_argument("--max-memory", type=float, default=2.0, help="GB of activations per batch (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each approach; the median is reported")
    p.add_argument("--xla", action="store_true", help="also time filterviz with jit_compile=True")
    p.add_argument("--coarse", type=float, action="append", default=[],
                   help="also time filterviz with this share of the steps at half size (repeatable)")
    p.add_argument("--precision", default="float32", choices=("float32", "mixed_float16", "mixed_bfloat16", "auto"),
                   help="filterviz's compute precision (the baseline stays float32)")
    p.add_argument("--also-precision", type=lambda s: [x.strip() for x in s.split(",") if x.strip()], default=[],
                   metavar="P,Q", help="also time filterviz in these precisions (e.g. float32,mixed_bfloat16)")
    p.add_argument("--profile", action="store_true",
                   help="also profile one segment of filterviz's loop: the share of op time per kind of op")
    p.add_argument("--device", default=None, help="run everything under tf.device(DEVICE), e.g. /GPU:0")
    p.add_argument("--conv-shape", default="8,64,256,256",
                   help="batch,size,in,out of the conv used to measure throughput (default 8,64,256,256)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")

    if args.device:
        wanted = args.device.upper().lstrip("/").replace("DEVICE:", "")
        have = [d.name for d in tf.config.list_logical_devices()]
        if not any(h.upper().endswith(wanted) for h in have):
            print(f"error: device {args.device!r} is not available; devices here: {', '.join(have)}", file=sys.stderr)
            return 2

    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    print(f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    bf16 = sorted(f for f in cpu_flags() if f in BF16_FLAGS) or ["none"]
    print(f"TensorFlow {tf.__version__}; CPU: {cpu_model()} ({os.cpu_count()} logical cores; bfloat16 flags: "
          f"{', '.join(bf16)}; auto = {resolve_precision('auto')}); GPUs: {', '.join(gpus) or 'none'}; "
          f"device: {args.device or 'default'}")
    print(f"command: python benchmarks/speed.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    print()

    scope = tf.device(args.device) if args.device else _nullcontext()
    with scope:
        b, s, ci, co = (int(v) for v in args.conv_shape.split(","))
        probes = {"float32": ConvProbe(b, s, ci, co)}
        for precision in [args.precision] + args.also_precision:
            dtype = compute_dtype(resolve_precision(precision))
            if dtype not in probes:  # filterviz's rows are compared with a conv in the dtype they compute in
                probes[dtype] = ConvProbe(b, s, ci, co, dtype)
        lm = load_model(args.model)
        for layer in args.layers.split(","):
            for line in bench_layer(lm, layer.strip(), args, probes):
                print(line)
            sys.stdout.flush()
    return 0


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    sys.exit(main())
