"""Start TensorFlow without its C++ start-up log lines (CUDA probes, CPU feature notes) on the terminal.

`import filterviz` imports no TensorFlow; the first public name that needs it (filterviz.render_layer, ...) starts
it here, once, with file descriptor 2 pointed at /dev/null meanwhile. The modules that need TensorFlow or Keras
take them from here (`from .quiet import tf, keras`), so importing one of them directly
(`from filterviz.attribution import attribute`) is as quiet. Python errors still surface normally, and
FILTERVIZ_TF_LOGS=1 shows the lines. Retracing warnings are avoided by construction (see
loop.replicated), not filtered.
"""

from __future__ import annotations

import os
import sys

__all__ = ["start_tensorflow"]  # and `tf`, `keras` (module __getattr__)


def start_tensorflow() -> None:
    """Import TensorFlow and initialize its devices quietly (a no-op once TensorFlow is up)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or os.environ.get("FILTERVIZ_TF_LOGS"):
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. some notebooks): import as it is
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_logical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def __getattr__(name: str):
    """`tf` and `keras`: the modules, TensorFlow started quietly first (PEP 562: on first use of the name)."""
    if name not in ("tf", "keras"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    start_tensorflow()
    import importlib

    return importlib.import_module("tensorflow" if name == "tf" else "keras")
