"""The YAML schema: every mistake is one line naming the file, the line and the key."""

from __future__ import annotations

import pytest

from filterviz.config import load_config, parse_config
from filterviz.errors import UserError


def _err(text: str) -> str:
    with pytest.raises(UserError) as e:
        parse_config(text, "c.yaml")
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_misspelled_key_names_key_line_and_suggestion():
    msg = _err("name: x\nlayers: [conv1]\nstpes: 10\n")
    assert msg.startswith("c.yaml:3: key 'stpes'") and "did you mean 'steps'" in msg


def test_misspelled_nested_key():
    msg = _err("figure:\n  layout: rows\n  widht: double\n")
    assert msg.startswith("c.yaml:3: key 'figure.widht'") and "'width'" in msg


def test_wrong_type_and_out_of_range():
    assert _err("layers: a\nsize: big\n").startswith("c.yaml:2: key 'size': bad size 'big'")
    assert _err("size: 4\n").startswith("c.yaml:1: key 'size'")
    assert _err("xla: 1\n").startswith("c.yaml:1: key 'xla': expected true or false")
    msg = _err("steps: 5\nsweep:\n  lr: [1.0,\n       -2]\n")
    assert msg.startswith("c.yaml:4: key 'sweep.lr'") and "positive" in msg
    assert "cannot be swept" in _err("sweep:\n  layers: [a, b]\n")
    assert _err("figure:\n  dpi: 5\n").startswith("c.yaml:2: key 'figure.dpi'")


def test_bad_yaml_syntax_names_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: a\nlayers: [conv1\nsize: 3\n")
    with pytest.raises(UserError, match=r"bad\.yaml:\d+: bad YAML"):
        load_config(p)


def test_values_parsed_as_meant():
    cfg = parse_config("filters: 8:16\nlr: 1e-3\nsweep:\n  steps: [5, 10]\n  preset: [fast, maco]\n", "c.yaml", "c")
    assert cfg.filters == "8:16" and dict(cfg.settings)["lr"] == 0.001 and cfg.name == "c"
    assert len(cfg.points()) == 4
    assert cfg.settings_for({"steps": 10, "preset": "maco"}).param == "maco"
    fig = parse_config("figure:\n  width: single\n  filters: 0:4\n", "c.yaml").figure
    assert fig.width == 3.5 and fig.filters == (0, 1, 2, 3)


def test_shipped_configs_are_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    for name in ("quick", "vgg16-hed-all-layers", "paper-figure"):
        cfg = load_config(root / f"{name}.yaml")
        assert cfg.name == name
    assert load_config(root / "paper-figure.yaml").figure.width == 7.16


def test_filters_use_the_one_filter_parser():
    """Unquoted 8:16 is a YAML base-60 integer; it is read as the range it looks like, with the parser's messages."""
    assert parse_config("filters: ' 8 :'\n", "c.yaml").filters == "8:"
    assert parse_config("filters: [3, 5]\n", "c.yaml").filters == (3, 5)
    assert _err("name: a\nfilters: 10:5\n") == (
        "c.yaml:2: key 'filters': filter range '10:5' is reversed: the end is exclusive and must be above the "
        "start, e.g. 5:10")
    assert _err("filters: [1,\n  -2]\n").startswith("c.yaml:2: key 'filters': filter index -2 is out of range")
    assert _err("filters: 3:3\n").startswith("c.yaml:1: key 'filters': filter range '3:3' is empty")
    assert "'x:1'" in _err("sweep:\n  filters: ['0:4', 'x:1']\n")
    assert "choose the columns" in _err("figure:\n  filters: '4:'\n")
