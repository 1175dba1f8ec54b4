"""filterviz: see what a convolutional network has learned.

    import filterviz
    result = filterviz.render_layer("vgg16-hed", "block3_conv1", filters="0:16",
                                    settings=filterviz.preset("fast", size=96))
    result.grid  # uint8 picture of every filter, tiled

The public names below are imported on first use, so `import filterviz` (and `filterviz --version`)
does not start TensorFlow.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "PRESETS": "settings",
    "LayerRenderer": "ascent",
    "LayerResult": "render",
    "RenderSettings": "settings",
    "preset": "settings",
    "render_layer": "render",
    "prepare_render": "render",
    "render_plan": "render",
    "RenderPlan": "render",
    "parse_filters": "settings",
    "select_filters": "settings",
    "UserError": "errors",
    "DEFAULT_MODEL": "settings",
    "LoadedModel": "models",
    "feature_extractor": "models",
    "load_model": "models",
    "callable_model": "models",
    "visual_layers": "models",
    "save_layer": "results",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        if _EXPORTS[name] not in ("settings", "errors"):  # TensorFlow starts here, without its log lines
            from .quiet import start_tensorflow

            start_tensorflow()
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'filterviz' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
