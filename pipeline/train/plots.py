"""The probe's figures, drawn with Pillow (the training side has no matplotlib).

`plot_confusion`: the identification confusion matrix (rows: true class, columns:
predicted; cell shade: share of the row, number: count). `plot_curves`: per epoch, the
train losses (left) and the train/test accuracies with the chance rate (right).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

__all__ = ["plot_confusion", "plot_curves"]

_FONT = ImageFont.load_default()
_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189))


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, format="PNG")
    tmp.replace(path)


def plot_confusion(identify: dict[str, Any], path: Path, cell: int = 34) -> None:
    """Draw identify["confusion"] (K x K counts) with identify["classes"] as labels."""
    conf, names = identify["confusion"], identify["classes"]
    k = len(names)
    left, top = 150, 180
    im = Image.new("RGB", (left + k * cell + 20, top + k * cell + 40), "white")
    d = ImageDraw.Draw(im)
    acc = identify.get("test_accuracy")
    title = (f"identify (test): accuracy {acc:.3f}, chance {identify.get('chance') or 0:.3f}, "
             f"n {identify.get('n_test_labelled', 0)}" if acc is not None else "identify: no test records")
    d.text((10, 8), title, fill="black", font=_FONT)
    d.text((10, top - 18), "true \\ predicted", fill="black", font=_FONT)
    for i, name in enumerate(names):
        d.text((10, top + i * cell + cell // 2 - 5), name[:22], fill="black", font=_FONT)
        label = Image.new("RGB", (130, 12), "white")
        ImageDraw.Draw(label).text((0, 0), name[:22], fill="black", font=_FONT)
        label = label.rotate(90, expand=True)
        im.paste(label, (left + i * cell + cell // 2 - 6, top - 136))
    for i, row in enumerate(conf):
        total = sum(row) or 1
        for j, n in enumerate(row):
            share = n / total
            shade = int(255 - 200 * share)
            colour = (shade, shade, 255) if i != j else (shade, 255, shade)
            x0, y0 = left + j * cell, top + i * cell
            d.rectangle((x0, y0, x0 + cell - 1, y0 + cell - 1), fill=colour, outline=(220, 220, 220))
            if n:
                d.text((x0 + 4, y0 + cell // 2 - 5), str(n), fill="black", font=_FONT)
    _save(im, path)


def _panel(d: ImageDraw.ImageDraw, box: tuple[int, int, int, int], title: str,
           series: dict[str, list[tuple[float, float]]], y_range: tuple[float, float] | None,
           hline: tuple[str, float] | None = None) -> None:
    x0, y0, x1, y1 = box
    d.rectangle(box, outline="black")
    d.text((x0, y0 - 16), title, fill="black", font=_FONT)
    points = [p for s in series.values() for p in s]
    if not points:
        d.text((x0 + 10, y0 + 10), "no data", fill="black", font=_FONT)
        return
    xs = [p[0] for p in points]
    lo_x, hi_x = 0.0, max(max(xs), 1.0)
    if y_range is None:
        ys = [p[1] for p in points] + ([hline[1]] if hline else [])
        lo_y, hi_y = min(0.0, min(ys)), max(ys) * 1.05 or 1.0
    else:
        lo_y, hi_y = y_range

    def xy(x: float, y: float) -> tuple[float, float]:
        return (x0 + (x - lo_x) / (hi_x - lo_x) * (x1 - x0),
                y1 - (y - lo_y) / ((hi_y - lo_y) or 1.0) * (y1 - y0))

    for t in range(5):
        yv = lo_y + (hi_y - lo_y) * t / 4
        _, yy = xy(lo_x, yv)
        d.line((x0, yy, x0 - 4, yy), fill="black")
        d.text((x0 - 40, yy - 5), f"{yv:.2f}", fill="black", font=_FONT)
    d.text((x1 - 40, y1 + 4), f"epoch {hi_x:g}", fill="black", font=_FONT)
    if hline is not None:
        _, yy = xy(lo_x, hline[1])
        d.line((x0, yy, x1, yy), fill=(150, 150, 150), width=1)
        d.text((x0 + 4, yy - 12), hline[0], fill=(120, 120, 120), font=_FONT)
    for n, (name, pts) in enumerate(series.items()):
        colour = _COLOURS[n % len(_COLOURS)]
        coords = [xy(x, y) for x, y in pts]
        if len(coords) > 1:
            d.line(coords, fill=colour, width=2)
        for cx, cy in coords:
            d.ellipse((cx - 3, cy - 3, cx + 3, cy + 3), fill=colour)
        d.text((x0 + 8, y0 + 6 + 13 * n), name, fill=colour, font=_FONT)


def plot_curves(curves: list[dict[str, Any]], chance: float | None, path: Path) -> None:
    """Losses and accuracies per epoch (rows of metrics["curves"])."""
    im = Image.new("RGB", (900, 360), "white")
    d = ImageDraw.Draw(im)

    def series(keys: list[str]) -> dict[str, list[tuple[float, float]]]:
        return {k: [(r["epoch"], r[k]) for r in curves if r.get(k) is not None] for k in keys}

    _panel(d, (60, 40, 430, 320), "train loss per epoch",
           series(["loss_identify", "loss_severity", "loss_compare"]), None)
    _panel(d, (510, 40, 880, 320), "accuracy per epoch",
           series(["train_identify_accuracy", "test_identify_accuracy",
                   "train_compare_accuracy", "test_compare_accuracy"]), (0.0, 1.0),
           ("identify chance", chance) if chance is not None else None)
    _save(im, path)
