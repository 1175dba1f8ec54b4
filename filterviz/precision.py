"""`precision: auto`: the compute precision that is fastest, with the same pictures, on the CPU it runs on.

The choice is a table of CPU flags (from /proc/cpuinfo), each backed by a measurement with
`benchmarks/speed.py` (vgg16-hed block3_conv1, seconds per filter-step):

- `amx_bf16` (AMX tiles: Intel Sapphire Rapids and later): mixed_bfloat16. A 2-core Xeon ran 5-7x faster than
  in float32, with the same metrics (docs/benchmarks.md).
- `avx512_bf16` (AVX-512 BF16: AMD Zen 4 and later, Intel Cooper Lake): mixed_bfloat16. A 2-core AMD EPYC Zen 4
  (no AMX), 16 filters, 128 px, 30 steps: float32 0.0151, mixed_bfloat16 0.0078, the same picture metrics.
- neither (e.g. AVX2-only AMD Zen 3, older Intel): float32. bfloat16 is emulated there: on a 2-core AMD EPYC
  Zen 3, 8 filters, 64 px, 10 steps: mixed_bfloat16 0.729 against 0.055 in float32 (13x slower; docs/scale.md).

A GPU keeps float32 (not measured yet). A flag is only added to the table with a measurement: 'auto' must never
slow a CPU down. Explicit precisions are returned as they are.
"""

from __future__ import annotations

__all__ = ["BF16_FLAGS", "cpu_flags", "cpu_model", "auto_precision", "resolve_precision"]

# CPU flag -> why it makes bfloat16 fast there (the flags with native bfloat16 matrix or dot-product instructions)
BF16_FLAGS: dict[str, str] = {
    "amx_bf16": "AMX bfloat16 tiles (Intel Sapphire Rapids and later): 5-7x faster than float32, measured",
    "avx512_bf16": "AVX-512 BF16 dot products (AMD Zen 4+, Intel Cooper Lake): 1.9x faster than float32, measured",
}


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (the first 'flags' line of /proc/cpuinfo); empty where it cannot be read."""
    try:
        with open(path) as f:
            line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.partition(":")[2].split())


def cpu_model(path: str = "/proc/cpuinfo") -> str:
    """The CPU's model name, for benchmark reports (numbers are only comparable on the same CPU)."""
    import platform

    try:
        with open(path) as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def auto_precision(flags: frozenset[str] | set[str], gpu: bool = False) -> str:
    """mixed_bfloat16 where the CPU has one of `BF16_FLAGS` (and there is no GPU), else float32."""
    if gpu:
        return "float32"
    return "mixed_bfloat16" if any(f in flags for f in BF16_FLAGS) else "float32"


def resolve_precision(precision: str) -> str:
    """'auto' -> the table's choice for this machine (see the module docstring); other values unchanged."""
    if precision != "auto":
        return precision
    import tensorflow as tf

    return auto_precision(cpu_flags(), gpu=bool(tf.config.list_logical_devices("GPU")))
