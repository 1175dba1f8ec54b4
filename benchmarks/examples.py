"""Images per second of `filterviz examples` against a plain batched forward pass, and its memory at N/4 and N.

    python benchmarks/examples.py                      # 10000 JPEGs, vgg16-hed block2_conv2, 128 px, batch 32
    python benchmarks/examples.py --n 2000             # a quicker check
    python benchmarks/examples.py --layer block3_conv3 --size 224

The JPEGs are cut from the offline sample photos (matplotlib's Grace Hopper, scikit-learn's two if installed):
random crops of 120-400 px, half of them mirrored, written to a temp folder that is deleted afterwards (never
committed). Both approaches read the same files through the same tf.data pipeline (`filterviz.examples.
image_dataset`: decode, centre crop, resize, batch, prefetch):
- "forward only": `model.predict_on_batch` of the extractor per batch, outputs dropped (the floor);
- "filterviz examples": `find_examples`, i.e. the same forward plus the per-filter max and argmax, the streaming
  top-k merge, the patch crops and writing the results.
A small warm-up run (tracing) precedes each and is not timed. Memory: the largest resident set size sampled
after every batch, and tracemalloc's peak of Python-side allocations (where the top-k state lives), for a run
over the first N/4 files and a run over all N: bounded memory means both about equal.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from filterviz.precision import cpu_model  # noqa: E402
from filterviz.examples import find_examples, image_dataset, list_images  # noqa: E402
from filterviz.models import feature_extractor, load_model  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def photos() -> list[np.ndarray]:
    from matplotlib import cbook

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        out = [np.asarray(im.convert("RGB"))]
    try:
        from sklearn.datasets import load_sample_images

        out += list(load_sample_images().images)
    except ImportError:
        pass
    return out


def make_jpegs(folder: Path, n: int, seed: int = 0) -> None:
    pics = photos()
    rng = np.random.default_rng(seed)
    for i in range(n):
        p = pics[i % len(pics)]
        h, w = p.shape[:2]
        ch, cw = int(rng.integers(120, min(400, h))), int(rng.integers(120, min(400, w)))
        y, x = int(rng.integers(0, h - ch)), int(rng.integers(0, w - cw))
        crop = p[y:y + ch, x:x + cw]
        sub = folder / f"{i // 1000:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(crop[:, ::-1] if i % 2 else crop)).save(sub / f"{i:05d}.jpg", quality=88)


def forward_only(lm, layer: str, folder: Path, files: list[str], size: int, batch: int) -> float:
    model = feature_extractor(lm, layer, pre_activation=False).model
    for images, _ in image_dataset(folder, files[:batch], size, lm.channels, batch):  # warm-up (tracing)
        model.predict_on_batch(images.numpy().astype(np.float32))
    start = time.perf_counter()
    for images, _ in image_dataset(folder, files, size, lm.channels, batch):
        model.predict_on_batch(images.numpy().astype(np.float32))
    return time.perf_counter() - start


def filterviz_run(lm, layer: str, folder: Path, out: Path, size: int, batch: int, k: int) -> tuple[float, float, float]:
    """(seconds, max RSS MiB after a batch, tracemalloc peak MiB) of one find_examples run from scratch."""
    rss = [rss_mib()]
    tracemalloc.start()
    start = time.perf_counter()
    find_examples(lm, layer, folder, out, k=k, batch=batch, size=size, on_batch=lambda s: rss.append(rss_mib()))
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, max(rss), peak


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10000, help="number of JPEGs (default 10000)")
    p.add_argument("--model", default="vgg16-hed")
    p.add_argument("--layer", default="block2_conv2")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--k", type=int, default=9)
    args = p.parse_args()
    lm = load_model(args.model)
    with tempfile.TemporaryDirectory(prefix="filterviz-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        make_jpegs(tmp / "images", args.n)
        print(f"{args.n} JPEGs written in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        files = list_images(tmp / "images")
        quarter = tmp / "quarter"
        quarter.mkdir()
        for f in files[: args.n // 4]:
            (quarter / f.replace("/", "_")).symlink_to(tmp / "images" / f)
        filterviz_run(lm, args.layer, quarter, tmp / "warm", args.size, args.batch, args.k)  # warm-up (tracing)
        base = forward_only(lm, args.layer, tmp / "images", files, args.size, args.batch)
        small = filterviz_run(lm, args.layer, quarter, tmp / "out-quarter", args.size, args.batch, args.k)
        full = filterviz_run(lm, args.layer, tmp / "images", tmp / "out-full", args.size, args.batch, args.k)
    print(f"\n{lm.name} {args.layer}, {args.size} px, batch {args.batch}, k {args.k}; CPU: {cpu_model()} "
          f"({os.cpu_count()} cores)\n")
    print(f"| {'run':34} | {'images':>6} | {'images/s':>8} | {'max RSS MiB':>11} | {'tracemalloc peak MiB':>20} |")
    print(f"|{'-' * 36}|{'-' * 8}|{'-' * 10}|{'-' * 13}|{'-' * 22}|")
    print(f"| {'forward only (predict_on_batch)':34} | {args.n:6d} | {args.n / base:8.1f} | {'':>11} | {'':>20} |")
    for label, n, (sec, rss, peak) in (("filterviz examples, N/4", args.n // 4, small),
                                        ("filterviz examples, N", args.n, full)):
        print(f"| {label:34} | {n:6d} | {n / sec:8.1f} | {rss:11.0f} | {peak:20.1f} |")
    print(f"\nratio (filterviz examples / forward only, both over N): {(args.n / full[0]) / (args.n / base):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
