"""The offline gallery, end to end in a real browser: a tiny model's renders, dataset examples and kernels are
made here, the site is written, and headless Chromium (Selenium) walks index -> layer -> filter and back,
checking every picture loads and that no request leaves the machine. Screenshots go to pytest's tmp_path and,
if FILTERVIZ_SCREENSHOTS names a folder, there too.

Needs Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`) and selenium; without
them the test skips, except under CI (CI set), where it fails.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from filterviz.cli import main
from filterviz.errors import UserError
from filterviz.gallery import LayerSources, Render, _cover, default_first, detail, discover, write_gallery

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _photos() -> list[np.ndarray]:
    """The offline sample photos: matplotlib's Grace Hopper, and scikit-learn's two if it is installed."""
    from matplotlib import cbook

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        photos = [np.asarray(im.convert("RGB"))]
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        return photos
    return photos + list(load_sample_images().images)


def make_crops(folder: Path, n: int, seed: int = 0) -> None:
    """`n` JPEG crops (random squares and rectangles, half of them mirrored) of the sample photos."""
    photos = _photos()
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        p = photos[i % len(photos)]
        h, w = p.shape[:2]
        ch, cw = int(rng.integers(48, h // 2)), int(rng.integers(48, w // 2))
        y, x = int(rng.integers(0, h - ch)), int(rng.integers(0, w - cw))
        crop = p[y:y + ch, x:x + cw]
        crop = crop[:, ::-1] if i % 2 else crop
        sub = folder / ("flipped" if i % 2 else "plain")
        sub.mkdir(exist_ok=True)
        Image.fromarray(np.ascontiguousarray(crop)).save(sub / f"crop{i:03d}.jpg", quality=90)


@pytest.fixture(scope="module")
def results(tmp_path_factory, tiny_path) -> Path:
    """outputs/ of a tiny model: conv1 rendered twice (pixel, fourier) with examples and kernels; conv3 with
    a render and examples."""
    root = tmp_path_factory.mktemp("results")
    model = tiny_path
    make_crops(root / "photos", 40)
    out = root / "outputs"
    common = ["--model", str(model), "--input-range", "0:255", "--preset", "fast", "--quiet", "--size", "32", "--steps", "12"]
    assert main(["layer", "conv1", *common, "--out", str(out / "tiny" / "conv1")]) == 0
    assert main(["layer", "conv1", *common, "--param", "fourier", "--out", str(out / "tiny" / "conv1_fourier")]) == 0
    assert main(["layer", "conv3", *common, "--filters", "0:4", "--out", str(out / "tiny" / "conv3")]) == 0
    assert main(["kernels", "conv1", "--model", str(model), "--out", str(out / "tiny" / "conv1")]) == 0
    for layer in ("conv1", "conv3"):
        assert main(["examples", layer, "--model", str(model), "--images", str(root / "photos"), "--size", "64",
                     "--quiet", "--out", str(out / "tiny" / layer / "examples")]) == 0
    return out


@pytest.fixture(scope="module")
def site(results, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "gallery"
    assert main(["gallery", str(out), "--from", str(results)]) == 0
    return out


def test_discovery_and_pages(results, site):
    found = {(s.model, s.layer): s for s in discover(results)}
    assert sorted(found) == [("tiny", "conv1"), ("tiny", "conv3")]
    assert sorted(r.name for r in found["tiny", "conv1"].renders) == ["fourier/normalized", "pixel/normalized"]
    assert found["tiny", "conv1"].filters == list(range(8)) and found["tiny", "conv3"].filters == list(range(6))
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    assert pages == ["index.html"] + [f"tiny/{layer}/{p}" for layer, n in (("conv1", 8), ("conv3", 6))
                                       for p in sorted([f"f{i}.html" for i in range(n)] + ["index.html"])]
    page = (site / "tiny" / "conv1" / "f3.html").read_text()
    meta = json.loads((results / "tiny" / "conv1" / "examples" / "examples.json").read_text())
    for e in meta["filters"][3]["examples"]:
        assert e["file"] in page
    assert page.count("<figure>") == 2 + 9 and "Kernel" in page and "hf_share" in page
    for p in site.rglob("*.html"):
        text = p.read_text()
        assert 'name="viewport"' in text and not re.search(r"(https?:)?//|@import|url\(", text), p
        for src in re.findall(r'(?:src|href)="([^"]+)"', text):
            assert (p.parent / src).is_file(), (p, src)


def test_rewrite_replaces_only_a_gallery(results, site, tmp_path):
    before = (site / "index.html").read_text()
    write_gallery(results, site)  # an earlier gallery is replaced whole
    assert (site / "index.html").read_text() == before
    assert not [p for p in site.parent.iterdir() if p.name.startswith(".")]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(UserError, match="not a filterviz gallery"):
        write_gallery(results, tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").is_file()
    with pytest.raises(UserError, match="no renders"):
        write_gallery(tmp_path / "mine", tmp_path / "g")
    assert main(["gallery", str(results.parent), "--from", str(results)]) == 2


def _driver():
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        reason = f"no {CHROMIUM} / {DRIVER}: apt-get install chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI must run the browser test)")
        pytest.skip(reason)
    if not os.environ.get("CI"):
        pytest.importorskip("selenium", reason="selenium is not installed: pip install -e '.[test]'")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=412,915",
                "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(options=options, service=Service(DRIVER))


def _check_page(driver, shots: list[Path], name: str) -> None:
    """Every picture decoded, nothing fetched from outside, and a full-page screenshot."""
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete ? i.naturalWidth : 0])")
    assert images and all(width > 0 for _, width in images), [src for src, width in images if not width]
    urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(u.startswith("file://") for u in urls), urls
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1"), \
        f"{name} scrolls sideways on a phone-sized window"
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(412, min(max(height, 915), 6000))
    for folder in shots:
        driver.save_screenshot(str(folder / f"{name}.png"))
    driver.set_window_size(412, 915)


def test_browser_walk(site, tmp_path):
    shots = [tmp_path]
    if os.environ.get("FILTERVIZ_SCREENSHOTS"):
        shots.append(Path(os.environ["FILTERVIZ_SCREENSHOTS"]))
        shots[-1].mkdir(parents=True, exist_ok=True)
    driver = _driver()
    from selenium.webdriver.common.by import By

    try:
        driver.get((site / "index.html").as_uri())
        _check_page(driver, shots, "1-index")
        driver.find_element(By.CSS_SELECTOR, 'a[href="tiny/conv1/index.html"]').click()
        assert driver.current_url.endswith("tiny/conv1/index.html")
        _check_page(driver, shots, "2-layer-conv1")
        driver.find_element(By.CSS_SELECTOR, 'a[href="f2.html"]').click()
        assert driver.title.endswith("filter 2")
        _check_page(driver, shots, "3-filter-conv1-2")
        driver.find_element(By.CSS_SELECTOR, 'a[rel="next"]').click()
        assert driver.title.endswith("filter 3")
        driver.find_element(By.CSS_SELECTOR, 'a[rel="prev"]').click()
        assert driver.title.endswith("filter 2")
        driver.find_element(By.LINK_TEXT, "conv1").click()
        assert driver.current_url.endswith("tiny/conv1/index.html")
        driver.find_element(By.LINK_TEXT, "index").click()
        assert driver.current_url.endswith("gallery/index.html")
        driver.find_element(By.CSS_SELECTOR, 'a[href="tiny/conv3/index.html"]').click()
        driver.find_element(By.CSS_SELECTOR, 'a[href="f0.html"]').click()
        _check_page(driver, shots, "4-filter-conv3-0")
        sent = [json.loads(m["message"])["message"] for m in driver.get_log("performance")]
        urls = [m["params"]["request"]["url"] for m in sent if m["method"] == "Network.requestWillBeSent"]
        assert urls and all(u.startswith("file://") for u in urls), [u for u in urls if not u.startswith("file://")]
    finally:
        driver.quit()
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["1-index.png", "2-layer-conv1.png",
                                                               "3-filter-conv1-2.png", "4-filter-conv3-0.png"]


def test_detail_ranks_texture_over_colour_fields_over_flat():
    y, x = np.mgrid[0:32, 0:32]
    stripes = np.where((x // 2) % 2 == 0, 255, 0).astype(np.uint8)[..., None].repeat(3, axis=2)
    fields = np.where(x < 16, 255, 0).astype(np.uint8)[..., None].repeat(3, axis=2)  # as much contrast, one edge
    flat = np.full((32, 32, 3), 90, np.uint8)
    assert detail(stripes) > 5 * detail(fields) > 0 == detail(flat)
    assert np.std(stripes) == np.std(fields)  # the pixel spread cannot tell them apart


def test_default_preset_renders_come_first():
    """A sweep over presets writes `fast` before `quality` (folder order); the layer's tiles and card come from
    the first render, so the default preset's (the best pictures) goes first, the others keep their order."""
    def render(name: str) -> Render:
        return Render(Path(name), name, np.zeros((1, 4, 4, 3), np.uint8), [0], {})

    names = [r.name for r in default_first([render("fast"), render("fourier/adam"), render("quality (b)"),
                                             render("lucid"), render("quality")])]
    assert names == ["quality (b)", "quality", "fast", "fourier/adam", "lucid"]


def test_index_card_is_the_most_detailed_tile(results, site):
    """A layer's card on the index is the tile of its first render with the most detail, not filter 0 (a flat
    tile, which a brightness-loving filter rightly gets, says nothing about the layer)."""
    s = {(x.model, x.layer): x for x in discover(results)}["tiny", "conv1"]
    r = s.renders[0]
    spreads = [detail(d) for d in r.display]
    best = r.filters[int(np.argmax(spreads))]
    cards = re.findall(r'<img src="([^"]+)"[^>]*alt="conv1"', (site / "index.html").read_text())
    assert best != r.filters[0] and cards == [f"tiny/conv1/r0/f{best}.png"], (cards, spreads)


def test_a_layers_cover_is_a_grown_picture_not_a_woken_patch():
    """The index card shows the grown picture with the most detail; a woken unit's tiled patch (the most
    detail of all) or a photo start only where nothing else was grown."""
    noisy = np.random.default_rng(0).integers(0, 256, (16, 16, 3)).astype(np.uint8)
    stripes = np.tile((np.arange(16) % 4 < 2)[None, :, None] * 255, (16, 1, 3)).astype(np.uint8)
    flat = np.full((16, 16, 3), 128, np.uint8)
    rows = {0: {}, 1: {"woken": True}, 2: {}, 3: {"photo_start": True}}
    r = Render(Path("."), "quality", np.stack([flat, noisy, stripes, noisy]), [0, 1, 2, 3], rows)
    assert _cover(LayerSources("m", "l", renders=[r])) == 2
    rows[1]["woken"] = False
    assert _cover(LayerSources("m", "l", renders=[r])) == 1
