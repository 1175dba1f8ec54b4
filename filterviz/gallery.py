"""A static website of a results folder: every layer's filters, each with its renders, dataset examples, kernel
and metrics. Plain HTML with inline CSS and relative links to PNG files beside it: it opens from the file system
with no server, makes no network request, and reads on a phone (viewport meta, CSS grid).

Discovery under the source folder (default `outputs/`):
- a render: a folder holding metrics.json and images.npz (`filterviz layer`, sweep jobs); its name is
  metrics.json's `preset` where there is one, else `param/optimizer` from its settings; a layer's renders of the
  default preset come first (its tiles and index card are the first render's);
- dataset examples: a folder holding examples.json and examples.npz (`filterviz examples`);
- kernels: a folder holding kernels.npz (`filterviz kernels`), named by a render beside it or by its path
  `<model>/<layer>/`.

Pages: index.html (layers per model), <model>/<layer>/index.html (tiles linking to filter pages) and
<model>/<layer>/f<N>.html. The site is built in a temp folder and renamed into place, so the output folder is
always a whole gallery (the old or the new one).
"""

from __future__ import annotations

import dataclasses
import html
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError
from .files import read_json, safe_name
from .kernels import kernel_tiles
from .settings import DEFAULT_PRESET, PRESETS

__all__ = ["LayerSources", "default_first", "detail", "discover", "write_gallery"]

MARKER = ".filterviz-gallery"
_CSS = """
*{box-sizing:border-box}body{margin:0;font:15px/1.4 system-ui,sans-serif;color:#222;background:#fafafa}
main{max-width:1100px;margin:auto;padding:12px}a{color:#0645ad}h1{font-size:1.4em;margin:.3em 0}
h2{font-size:1.15em;margin:1em 0 .4em}nav{display:flex;flex-wrap:wrap;gap:.4em 1em;padding:8px 12px;
background:#eee;border-bottom:1px solid #ccc}.grid{display:grid;gap:6px;
grid-template-columns:repeat(auto-fill,minmax(var(--tile,84px),1fr))}.grid a,.grid figure{display:block;margin:0;
background:#fff;border:1px solid #ddd;padding:3px;text-decoration:none;color:#333;font-size:12px;text-align:center}
img{width:100%;height:auto;display:block;image-rendering:pixelated;background:#ccc}figcaption{font-size:12px;
overflow-wrap:anywhere}.wide{--tile:180px}.ex{--tile:110px}table{border-collapse:collapse;font-size:13px;
display:block;overflow-x:auto}td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}.layers{--tile:150px}.muted{color:#777}
"""


@dataclass
class Render:
    folder: Path
    name: str
    display: np.ndarray  # uint8 [N,H,W,C]
    filters: list[int]
    rows: dict[int, dict]


@dataclass
class LayerSources:
    """Everything found for one layer of one model."""

    model: str
    layer: str
    renders: list[Render] = field(default_factory=list)
    examples: tuple[Path, dict] | None = None
    kernels: tuple[np.ndarray, list[int]] | None = None

    @property
    def filters(self) -> list[int]:
        found = {f for r in self.renders for f in r.filters}
        if self.examples is not None:
            found |= {r["filter"] for r in self.examples[1]["filters"] if r["examples"]}
        if self.kernels is not None:
            found |= set(self.kernels[1])
        return sorted(found)


def _natural(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _render(folder: Path, meta: dict) -> Render | None:
    try:
        with np.load(folder / "images.npz") as z:
            display, filters = z["display"], [int(f) for f in z["filters"]]
        rows = {int(r["filter"]): r for r in meta["filters"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    settings = meta.get("settings") or {}
    return Render(folder, _render_name(meta.get("preset"), settings), display, filters, rows)


def _render_name(preset: str | None, settings: dict) -> str:
    """The preset's name where the settings are exactly that preset's (size and seed aside), else what they are."""
    ignore = ("size", "seed", "labels", "chunk", "max_memory_gb")
    if preset in PRESETS:
        own = dataclasses.asdict(PRESETS[preset])
        if all(settings.get(k) == v for k, v in own.items() if k not in ignore):
            return str(preset)
    return f"{settings.get('param', '?')}/{settings.get('optimizer', '?')}"


def discover(source: str | os.PathLike) -> list[LayerSources]:
    """Every layer with a render, examples or kernels under `source`, in model and natural layer order."""
    root = Path(source)
    if not root.is_dir():
        raise UserError(f"results folder '{root}' does not exist; make results with filterviz layer/examples/kernels")
    layers: dict[tuple[str, str], LayerSources] = {}

    def entry(model: str, layer: str) -> LayerSources:
        key = (safe_name(model), safe_name(layer))
        return layers.setdefault(key, LayerSources(model, layer))

    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        folder, names = Path(dirpath), set(filenames)
        meta = read_json(folder / "metrics.json") if "metrics.json" in names else None
        if isinstance(meta, dict) and "images.npz" in names and meta.get("model") and meta.get("layer"):
            render = _render(folder, meta)
            if render is not None:
                entry(meta["model"], meta["layer"]).renders.append(render)
        ex = read_json(folder / "examples.json") if {"examples.json", "examples.npz"} <= names else None
        if isinstance(ex, dict) and ex.get("model") and ex.get("layer"):
            entry(ex["model"], ex["layer"]).examples = (folder, ex)
        if "kernels.npz" in names:
            model, layer = (meta["model"], meta["layer"]) if isinstance(meta, dict) and "layer" in meta \
                else (folder.parent.name, folder.name)
            try:
                with np.load(folder / "kernels.npz") as z:
                    entry(model, layer).kernels = (z["weights"], [int(f) for f in z["filters"]])
            except (OSError, ValueError, KeyError):
                pass
    found = [s for s in layers.values() if s.filters]
    for s in found:
        _name_renders(s, root)
        s.renders = default_first(s.renders)
    return sorted(found, key=lambda s: (s.model, _natural(s.layer)))


def default_first(renders: list[Render]) -> list[Render]:
    """The renders of the default preset (the best pictures) first, the others after them in folder order: the
    first render gives a layer's tiles and its index card, which should not be a quick look's noise."""
    return sorted(renders, key=lambda r: r.name.split(" (")[0] != DEFAULT_PRESET)


def _name_renders(sources: LayerSources, root: Path) -> None:
    """Renders of one layer sharing a name get their folder added to it."""
    names = [r.name for r in sources.renders]
    for r in sources.renders:
        if names.count(r.name) > 1:
            r.name = f"{r.name} ({r.folder.relative_to(root).as_posix()})"


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, nav: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n<body><nav>{nav}</nav><main>"
        f"<h1>{_esc(title)}</h1>\n{body}\n</main></body></html>\n"
    )


def _img(src: str, alt: str) -> str:
    return f'<img src="{_esc(src)}" alt="{_esc(alt)}">'


def _fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class _Site:
    """Writes one gallery into `root` (a fresh temp folder): PNGs and pages, relative links only."""

    def __init__(self, root: Path):
        self.root = root

    def png(self, rel: str, image: np.ndarray) -> str:
        from PIL import Image

        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        image = np.asarray(image)
        Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image).save(path)
        return rel

    def html(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _layer_images(site: _Site, s: LayerSources, base: str) -> dict[int, dict]:
    """Write the layer's PNGs; per filter: renders [(name, file)], examples [(file, meta row)], kernel file."""
    per: dict[int, dict] = {f: {"renders": [], "examples": [], "kernel": None} for f in s.filters}
    for i, r in enumerate(s.renders):
        for n, f in enumerate(r.filters):
            per[f]["renders"].append((r, site.png(f"{base}/r{i}/f{f}.png", r.display[n])))
    if s.examples is not None:
        folder, meta = s.examples
        with np.load(folder / "examples.npz") as z:
            patches = z["patches"]
        for row in meta["filters"]:
            for slot, e in enumerate(row["examples"]):
                per[row["filter"]]["examples"].append((site.png(f"{base}/x/f{row['filter']}_{slot}.png",
                                                                patches[row["filter"], slot]), e))
    if s.kernels is not None:
        weights, filters = s.kernels
        for n, f in enumerate(filters):
            tiles, cols = kernel_tiles(weights[..., n:n + 1], tile_px=48)
            picture = tiles[0] if cols == 0 else np.concatenate(list(tiles), axis=1)
            per[f]["kernel"] = site.png(f"{base}/k/f{f}.png", picture)
    return per


def _tile_src(item: dict) -> str | None:
    if item["renders"]:
        return item["renders"][0][1]
    if item["examples"]:
        return item["examples"][0][0]
    return item["kernel"]


def detail(picture: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels: high for a texture, 0 for a flat tile and low for
    a few plain colour fields."""
    p = np.asarray(picture, np.float32)
    return float(np.abs(np.diff(p, axis=0)).mean() + np.abs(np.diff(p, axis=1)).mean())


def _cover(s: LayerSources) -> int:
    """The filter whose first render shows the most detail: a layer's index card should not be a flat tile or a
    plain colour field, which a filter that prefers plain brightness or colour rightly gets. Pictures not grown
    from noise (a woken unit's tiled pixel patch, a photo start) come last: a tiled patch has the most detail of
    all, and shows least of what the layer draws."""
    if not s.renders:
        return s.filters[0]
    r = s.renders[0]
    rows = [r.rows.get(int(f), {}) for f in r.filters]
    best = max(range(len(rows)), key=lambda i: (not (rows[i].get("woken") or rows[i].get("photo_start")),
                                                 detail(r.display[i])))
    return int(r.filters[best])


def _filter_body(s: LayerSources, f: int, item: dict, base: str) -> str:
    rel = len(base.split("/"))
    up = lambda p: p[len(base) + 1:] if p.startswith(base + "/") else "../" * rel + p  # noqa: E731
    parts = []
    if item["renders"]:
        figs = "".join(f"<figure>{_img(up(p), f'filter {f}, {r.name}')}<figcaption>{_esc(r.name)}</figcaption>"
                       "</figure>" for r, p in item["renders"])
        parts.append(f'<h2>Renders</h2><div class="grid wide">{figs}</div>')
    if item["examples"]:
        figs = "".join(
            f"<figure>{_img(up(p), e['file'])}<figcaption>{_fmt(e['activation'])}<br>"
            f"<span class=muted>{_esc(e['file'])}</span></figcaption></figure>" for p, e in item["examples"][:9])
        parts.append(f'<h2>Dataset examples (top {min(9, len(item["examples"]))})</h2><div class="grid ex">{figs}</div>'
                     "<p class=muted>activation (after the layer's activation function), source file; patches are the "
                     "units' receptive fields in the resized image</p>")
    if item["kernel"]:
        parts.append(f'<h2>Kernel</h2><div style="max-width:{"160px" if s.kernels[0].shape[2] == 3 else "100%"}">'
                     f"{_img(up(item['kernel']), f'kernel of filter {f}')}</div>")
    rows = [(r.name, r.rows.get(f)) for r, _ in item["renders"] if r.rows.get(f)]
    if rows:
        keys = [k for k, v in rows[0][1].items() if k != "filter" and not isinstance(v, (list, dict))]
        head = "".join(f"<th>{_esc(n)}</th>" for n, _ in rows)
        body = "".join(f"<tr><td>{_esc(k)}</td>" + "".join(f"<td>{_esc(_fmt(m.get(k)))}</td>" for _, m in rows)
                       + "</tr>" for k in keys)
        parts.append(f"<h2>Metrics</h2><table><tr><th>metric</th>{head}</tr>{body}</table>")
    return "\n".join(parts)


def _write_layer(site: _Site, s: LayerSources) -> tuple[str, str | None, int]:
    """The layer page and its filter pages; returns (layer page path, its cover tile, filter pages)."""
    base = f"{safe_name(s.model)}/{safe_name(s.layer)}"
    per = _layer_images(site, s, base)
    filters = s.filters
    home = '<a href="../../index.html">index</a>'
    tiles = "".join(f'<a href="f{f}.html">{_img(_tile_src(per[f])[len(base) + 1:], f"filter {f}")}{f}</a>'
                    for f in filters)
    what = ", ".join([r.name for r in s.renders] + (["dataset examples"] if s.examples else [])
                     + (["kernels"] if s.kernels else []))
    shown = (f"first render ({_esc(s.renders[0].name)}) or, without one, the top dataset example" if s.renders
             else "top dataset example")
    body = (f"<p>{len(filters)} filters; {_esc(what)}. Tiles show the {shown}; each opens its filter page.</p>"
            f'<div class="grid">{tiles}</div>')
    site.html(f"{base}/index.html", _page(f"{s.model} · {s.layer}", home, body))
    for n, f in enumerate(filters):
        prev = f'<a href="f{filters[n - 1]}.html" rel="prev">← filter {filters[n - 1]}</a>' if n else ""
        nxt = (f'<a href="f{filters[n + 1]}.html" rel="next">filter {filters[n + 1]} →</a>'
               if n + 1 < len(filters) else "")
        nav = f'{home}<a href="index.html">{_esc(s.layer)}</a>{prev}{nxt}'
        title = f"{s.model} · {s.layer} · filter {f}"
        site.html(f"{base}/f{f}.html", _page(title, nav, _filter_body(s, f, per[f], base)))
    return f"{base}/index.html", _tile_src(per[_cover(s)]), len(filters)


def _write_index(site: _Site, entries: list[tuple[LayerSources, str, str, int]]) -> None:
    body = []
    for model in sorted({s.model for s, *_ in entries}):
        cards = "".join(
            f'<a href="{_esc(page)}">{_img(thumb, s.layer)}<b>{_esc(s.layer)}</b><br>{n} filters'
            f'<br><span class=muted>{len(s.renders)} render{"s" * (len(s.renders) != 1)}'
            f'{", examples" if s.examples else ""}{", kernels" if s.kernels else ""}</span></a>'
            for s, page, thumb, n in entries if s.model == model)
        body.append(f'<h2>{_esc(model)}</h2><div class="grid layers">{cards}</div>')
    site.html("index.html", _page("filterviz gallery", "<span>filterviz gallery</span>", "\n".join(body)))


def _swap_in(temp: Path, out: Path) -> None:
    """Replace `out` (absent, empty, or an earlier gallery) with the finished `temp` folder."""
    if out.exists():
        if not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file()):
            raise UserError(f"'{out}' exists and is not a filterviz gallery; give a new or empty folder")
        trash = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        os.replace(out, trash / "site")
        os.replace(temp, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(temp, out)


def write_gallery(source: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """Write the website for everything under `source` into `out_dir`; returns its index path and counts."""
    src, out = Path(source).resolve(), Path(out_dir).resolve()
    if out == src or out in src.parents:
        raise UserError(f"gallery folder '{out_dir}' holds the results folder '{source}'; write the gallery elsewhere")
    found = discover(src)
    if not found:
        raise UserError(f"no renders, dataset examples or kernels under '{source}'; make some with "
                        "filterviz layer, filterviz examples or filterviz kernels")
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.new-"))
    try:
        site = _Site(temp)
        entries = []
        for s in found:
            page, thumb, n = _write_layer(site, s)
            entries.append((s, page, thumb, n))
        _write_index(site, entries)
        (temp / MARKER).write_text("written by filterviz gallery\n")
        os.chmod(temp, 0o755)
        _swap_in(temp, out)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return {"index": out / "index.html", "layers": len(entries), "filters": sum(n for *_, n in entries)}
