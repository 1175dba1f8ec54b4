"""Kernel grids: layout, symmetric per-filter normalization, and `filterviz kernels` end to end."""

from __future__ import annotations

import numpy as np
import pytest

from filterviz.cli import main
from filterviz.kernels import kernel_grid, kernel_tiles


def test_rgb_tiles_zero_is_grey_and_symmetric():
    w = np.zeros((3, 3, 3, 2), np.float32)
    w[0, 0, 0, 0], w[1, 1, 2, 0] = 2.0, -1.0
    w[2, 2, 1, 1] = 0.001  # a weak filter is scaled on its own
    tiles, cols = kernel_tiles(w, tile_px=3)
    assert cols == 0 and tiles.shape == (2, 3, 3, 3)
    assert tiles[0, 0, 0, 0] == 255 and tiles[0, 1, 1, 2] == 64 and tiles[0, 2, 2, 1] == 128
    assert tiles[1, 2, 2, 1] == 255


def test_grayscale_per_input_channel_limited():
    w = np.random.RandomState(0).normal(size=(3, 3, 20, 5))
    tiles, cols = kernel_tiles(w, filters=[1, 3], max_inputs=4, tile_px=6)
    assert cols == 4 and tiles.shape == (8, 6, 6, 1)
    # filter-major: tile k is filter k // 4, input channel k % 4; nearest-neighbour enlargement
    sub = w[:, :, :4, 3]
    expected = np.round((0.5 + 0.5 * sub / np.abs(sub).max()) * 255).astype(np.uint8)
    np.testing.assert_array_equal(tiles[4 + 2, ::2, ::2, 0], expected[:, :, 2])
    pic = kernel_grid(w, [1, 3], max_inputs=4, tile_px=6)
    assert pic.shape == (2 * 6 + 3 * 2, 4 * 6 + 5 * 2, 1)


def test_bad_shape():
    with pytest.raises(ValueError):
        kernel_tiles(np.zeros((3, 3, 3)))


def test_cli_kernels(tiny_path, tmp_path, capsys):
    out = tmp_path / "k"
    assert main(["kernels", "conv1", "--model", tiny_path, "--out", str(out), "--labels"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["kernels.npz", "kernels.png"]
    assert np.load(out / "kernels.npz")["weights"].shape == (3, 3, 3, 8)
    assert main(["kernels", "conv2", "--model", tiny_path, "--out", str(tmp_path / "k2"), "--inputs", "3",
                 "--filters", "0:4"]) == 0
    assert "first 3 of 8" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, words",
    [
        (["kernels", "conv9"], ["conv9", "conv1"]),
        (["kernels", "pool"], ["pool", "no conv kernel"]),
        (["kernels", "conv2", "--filters", "12"], ["12", "0 to 11"]),
        (["kernels", "conv2", "--inputs", "0"], ["inputs"]),
    ],
)
def test_cli_kernels_errors(args, words, tiny_path, tmp_path, capsys):
    out = tmp_path / "k"
    assert main(args + ["--model", tiny_path, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(w in err for w in words), err
    assert not out.exists()
