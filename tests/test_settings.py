"""The settings schema: one FieldSpec per RenderSettings field gives its checks, CLI option and YAML key."""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from filterviz.config import parse_config, setting_keys
from filterviz.errors import UserError
from filterviz.settings import PRESETS, SCHEMA, FilterRange, RenderSettings, parse_filters, preset, select_filters

BASE = PRESETS["maco"]  # maco, so every field (contrast too) can take another value


def _other_value(name: str):
    """A valid value of field `name` that differs from BASE's."""
    spec, now = SCHEMA[name], getattr(BASE, name)
    if spec.kind is bool:
        return not now
    if spec.choices:
        return next(c for c in spec.choices if c != now)
    if spec.kind is str:  # a path
        return "start.png"
    if spec.kind is int:
        return (now or spec.min) + 2  # even: coarse needs an even size
    return float(now if now is not None else spec.min) + 0.25


def _bad_values(name: str) -> list:
    spec = SCHEMA[name]
    if spec.kind is bool:
        return ["yes", 1]
    if spec.choices:
        return ["nonsense", 3]
    if spec.kind is str:
        return [3, True]
    bad = ["x", float("nan")]
    bad += [spec.min - 1] if spec.min is not None else []
    bad += [spec.above] if spec.above is not None else []
    bad += [spec.max + 1] if spec.max is not None else []
    bad += [spec.below] if spec.below is not None else []
    return bad


def test_importing_settings_and_config_starts_no_tensorflow():
    code = ("import sys, filterviz.settings, filterviz.config, filterviz.cli.layer; "
            "filterviz.config.parse_config('steps: 5\\nsweep:\\n  lr: [1, 2]\\n').settings_for({'lr': 1.0}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_importing_a_tensorflow_module_directly_is_quiet():
    """`from filterviz.attribution import ...` (as docs/api.md writes it) starts TensorFlow without its C++
    start-up lines (CUDA probes, CPU feature notes), like `import filterviz` and its public names."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "FILTERVIZ_TF_LOGS")}
    code = "from filterviz.attribution import attribute; from filterviz.callbacks import FilterSnapshots"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_field_names_order_and_defaults_are_stable():
    """metrics.json stores dataclasses.asdict(settings): renaming, reordering or new defaults change results."""
    assert dataclasses.asdict(RenderSettings()) == {
        "size": 128, "steps": 30, "lr": 10.0, "seed": 0, "chunk": None, "max_memory_gb": 2.0, "border": 0,
        "objective": "mean", "pre_activation": True, "param": "pixel", "decay": 1.0, "contrast": 2.0, "optimizer": "normalized",
        "schedule": "constant", "transforms": "none", "tv": 0.0, "l2": 0.0, "blur": 0.0, "specificity": 0.0,
        "colour": 0.0, "colour_limit": 60.0, "segment": 10, "coarse": 0.0, "xla": False, "mirrored": False,
        "precision": "float32", "display": None, "labels": True, "diversity": 1, "diversity_weight": 1.0,
        "negative": False, "init": None, "init_weight": 0.0, "crops": 1, "spectrum": "sample", "alpha": False,
        "show_alpha": False, "start_colour": 0.0, "photo_colour": 0.0, "texture_decay": None,
        "texture_guard": None, "guard": 0.0,
    }
    assert list(SCHEMA) == [f.name for f in dataclasses.fields(RenderSettings)] == list(setting_keys())


@pytest.mark.parametrize("name", list(SCHEMA))
def test_every_field_has_a_cli_option(name):
    from filterviz.cli.layer import add_parser, settings_from_args

    sub = argparse.ArgumentParser().add_subparsers()
    add_parser(sub)
    value = _other_value(name)
    spec = SCHEMA[name]
    option = [spec.option] if spec.kind is bool else [spec.option, str(value)]
    s = settings_from_args(sub.choices["layer"].parse_args(["conv2", "--preset", "maco", *option]))
    assert getattr(s, name) == value != getattr(BASE, name)
    assert s.replace(**{name: getattr(BASE, name)}) == BASE  # nothing else changed


def test_cli_option_names_are_kept():
    assert {n: s.option for n, s in SCHEMA.items() if s.option != "--" + n.replace("_", "-")} == {
        "max_memory_gb": "--max-memory", "pre_activation": "--post-activation", "labels": "--no-labels"}


@pytest.mark.parametrize("name", list(SCHEMA))
def test_every_field_is_a_yaml_key(name):
    value = _other_value(name)
    text = str(value).lower() if isinstance(value, bool) else str(value)
    cfg = parse_config(f"preset: maco\n{name}: {text}\n", "c.yaml")
    assert getattr(cfg.settings_for({}), name) == value
    swept = parse_config(f"preset: maco\nsweep:\n  {name}: [{text}]\n", "c.yaml")
    assert getattr(swept.settings_for(swept.points()[0]), name) == value


@pytest.mark.parametrize("name", list(SCHEMA))
def test_a_bad_value_is_named(name):
    for bad in _bad_values(name):
        with pytest.raises(UserError) as e:
            RenderSettings(**{name: bad})
        msg = str(e.value)
        assert msg.startswith(f"bad {name} {bad!r}: ") and "\n" not in msg, msg


def test_bad_values_in_yaml_and_on_the_command_line():
    with pytest.raises(UserError, match=r"^c\.yaml:2: key 'segment': bad segment 0: a positive integer$"):
        parse_config("name: a\nsegment: 0\n", "c.yaml")
    with pytest.raises(UserError, match=r"^c\.yaml:1: key 'display': bad display 'dim': valid: std, range$"):
        parse_config("display: dim\n", "c.yaml")
    with pytest.raises(UserError, match="bad decay 9.0: a number from 0 to 4"):
        preset("lucid", decay=9.0)


def test_generated_messages_keep_their_wording():
    cases = {"size": (0, "an integer from 8 to 4096"), "lr": (-1.0, "a positive number"),
             "contrast": (11.0, "a number above 0, at most 10"), "border": (-1, "an integer >= 0"),
             "tv": (-1.0, "a number >= 0"), "param": ("voxel", "valid: pixel, fourier, maco")}
    for name, (value, what) in cases.items():
        with pytest.raises(UserError) as e:
            RenderSettings(**{name: value})
        assert str(e.value) == f"bad {name} {value!r}: {what}"


@pytest.mark.parametrize(
    "spec, parsed",
    [(None, "all"), (" ALL ", "all"), ("8:16", FilterRange(8, 16)), (" 8 : 16", FilterRange(8, 16)),
     (":4", FilterRange(None, 4)), ("3:", FilterRange(3, None)), ("3,7,9", (3, 7, 9)), ("3, 7,", (3, 7)),
     (5, (5,)), ([2, 0], (2, 0)), (np.array([1, 2], np.int32), (1, 2)), ("", ())],
)
def test_parse_filters(spec, parsed):
    assert parse_filters(spec) == parsed


@pytest.mark.parametrize("spec, words", [("a,b", "'a,b'"), ("1:2:3", "'1:2:3'"), ([1.5], "1.5"), ([True], "True"),
                                         (["3"], "'3'"), ("-2", "-2"), ("-2:4", "'-2:4'"), (2.5, "2.5")])
def test_parse_filters_errors_name_the_value(spec, words):
    with pytest.raises(UserError, match=words):
        parse_filters(spec)


def test_reversed_range_is_called_reversed():
    msg = "filter range '10:5' is reversed: the end is exclusive and must be above the start, e.g. 5:10"
    for call in (lambda: parse_filters("10:5"), lambda: select_filters("10:5", 64, "conv")):
        with pytest.raises(UserError) as e:
            call()
        assert str(e.value) == msg
    with pytest.raises(UserError, match="'4:4' is empty"):
        select_filters("4:4", 64)
    with pytest.raises(UserError, match="'0:65' is out of range of layer 'conv': valid indices are 0 to 63"):
        select_filters("0:65", 64, "conv")
