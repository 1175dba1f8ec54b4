"""Paper figures: exact width, valid PDF, same config -> same bytes, missing results named."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import make_tiny_cnn
from filterviz.cli import main
from filterviz.config import load_config
from filterviz.errors import UserError
from filterviz.figures import TileRow, layer_figure, rows_figure
from filterviz.files import save_figure
from filterviz.paper import write_figure
from filterviz.sweep import run_sweep


def _tiles(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)


def test_rows_figure_pdf_width_and_reproducible(tmp_path):
    rows = [TileRow(f"block{i}_conv1", _tiles(4, i), range(4)) for i in range(3)]
    for name in ("a", "b"):
        save_figure(rows_figure(rows, width="double", font_size=7), tmp_path / f"{name}.pdf", dpi=150, tight=False)
        save_figure(rows_figure(rows, width="single"), tmp_path / f"{name}.svg", dpi=150, tight=False)
    data = (tmp_path / "a.pdf").read_bytes()
    assert data.startswith(b"%PDF")
    box = re.search(rb"/MediaBox \[ *0 0 ([\d.]+) ([\d.]+) *\]", data)
    assert abs(float(box.group(1)) - 7.16 * 72) < 0.01
    assert data == (tmp_path / "b.pdf").read_bytes()
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()
    assert layer_figure(_tiles(10), layer="x", columns=4).get_size_inches()[0] == pytest.approx(7.16)


def test_figure_from_sweep_config(tmp_path):
    model = tmp_path / "tiny.keras"
    make_tiny_cnn().save(model)
    cfg_path = tmp_path / "paper.yaml"
    cfg_path.write_text(
        f"name: paper\nmodel: {model}\nlayers: [conv1, conv3]\nfilters: '0:4'\nsize: 16\nsteps: 2\n"
        f"output: {tmp_path / 'out'}\nfigure:\n  layout: rows\n  width: double\n  filters: [0, 2, 3]\n"
        "  formats: [pdf, png]\n"
    )
    cfg = load_config(cfg_path)
    with pytest.raises(UserError, match="figure needs job 'tiny__conv1'.*filterviz sweep"):
        write_figure(cfg)
    report = run_sweep(cfg, quiet=True)
    pdf = cfg.root / "figure.pdf"
    assert pdf in report.figure and (cfg.root / "figure.png").is_file()
    first = pdf.read_bytes()
    assert main(["figure", str(cfg_path)]) == 0
    assert pdf.read_bytes() == first
    box = re.search(rb"/MediaBox \[ *0 0 ([\d.]+)", first)
    assert abs(float(box.group(1)) - 515.52) < 0.01
