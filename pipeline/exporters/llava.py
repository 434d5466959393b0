"""LLaVA exports: LLaVA 1.5 (one image per record) and LLaVA-OneVision (image lists).

LLaVA 1.5 (haotian-liu/LLaVA `llava/train/train.py`): `LazySupervisedDataset.__getitem__`
opens `os.path.join(image_folder, record["image"])`, so `image` must be one string, and
`preprocess_multimodal` removes every "<image>" of a turn and puts one back at its start
("<image>\\n" + text), so a record can carry one image only. Single-image records are
written as they are; a multi-image record is either refused (the task is skipped and named)
or, with `compose="side-by-side"`, drawn as one canvas: the images left to right in the
order reference, A, B, each panel labelled with its name above it, and the human turn says
which panel is which ("the left panel (Reference)") before the question.

LLaVA-OneVision / LLaVA-NeXT (LLaVA-VL/LLaVA-NeXT `llava/train/train.py`): `image` may be
a list (`if type(image_file) is list`), and `preprocess_multimodal` leaves the "<image>"
tokens of a turn in place when there is more than one, one per image in list order; every
record is written in that form (a list also for one image), each placeholder on its own
labelled line ("Reference image: <image>").

Canvases are PNG files under `<dataset>/exports/llava/images/`, named by a hash of the
layout version, the panel names and the bytes of the source images, so two records that
show the same images share one file and a re-export writes the same bytes (an existing
file of the right name is kept). Record paths stay relative to the dataset root.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from pipeline.drawing import font
from pipeline.schema import IMAGE_TOKEN
from pipeline.store import atomic_write_bytes

__all__ = [
    "COMPOSE_DIR",
    "LAYOUT_VERSION",
    "REFUSED_HINT",
    "compose_side_by_side",
    "image_labels",
    "panel_legend",
    "panel_names",
    "question_answer",
    "record_images",
    "to_llava15",
    "to_llava_onevision",
    "with_placeholders",
]

COMPOSE_DIR = "exports/llava/images"
LAYOUT_VERSION = "side-by-side.v1"
REFUSED_HINT = ("LLaVA 1.5 takes one image per record; use --format llava-onevision "
                "(image lists, LLaVA-NeXT/OneVision trainers) or --compose side-by-side "
                "(one labelled canvas per record)")
_POSITIONS = {1: ("",), 2: ("left", "right"), 3: ("left", "middle", "right")}
_GAP = 8
_BACKGROUND = (255, 255, 255)
_INK = (0, 0, 0)


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 11 <= n % 100 <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def panel_positions(n: int) -> tuple[str, ...]:
    """Where each of n panels sits: left/middle/right up to three, else 1st, 2nd, ... from
    the left (in-context records show their examples and the target in one row)."""
    return _POSITIONS.get(n) or tuple(_ordinal(i) for i in range(1, n + 1))


def record_images(rec: dict[str, Any]) -> list[str]:
    """The images of a task record in the order the model sees them: reference, A, B; an
    in-context record (A_score_isp) has its example images first, the image to score last."""
    examples = list(rec.get("isp_images") or [])
    return examples + [rec[k] for k in ("image_ref", "image_A", "image_B")
                       if rec.get(k) is not None]


def image_labels(rec: dict[str, Any]) -> list[str]:
    """Names of the record's images as its questions use them."""
    # The questions call the images "the reference image", "the evaluated image" or
    # "Image A" / "Image B"; each placeholder line or panel says which image it is.
    compare = rec.get("image_B") is not None
    if rec.get("isp_images"):
        return [f"Example {i + 1}" for i in range(len(rec["isp_images"]))] + ["Last image"]
    labels = []
    if rec.get("image_ref") is not None:
        labels.append("Reference image")
    labels.append("Image A" if compare else "Evaluated image")
    if compare:
        labels.append("Image B")
    return labels


def with_placeholders(question: str, rec: dict[str, Any]) -> str:
    """The user turn with one "<image>" per image, labelled when there are several."""
    labels = image_labels(rec)
    if len(labels) == 1:
        return f"{IMAGE_TOKEN}\n{question}"
    return "".join(f"{label}: {IMAGE_TOKEN}\n" for label in labels) + question


def question_answer(rec: dict[str, Any]) -> tuple[str, str]:
    """(question, answer) of a DepictQA record: its conversation (train) or query/answer."""
    if "conversations" in rec:
        return rec["conversations"][0]["value"], rec["conversations"][1]["value"]
    return rec["query"], rec["answer"]


def _record(rec: dict[str, Any], image: str | list[str], human: str,
            answer: str) -> dict[str, Any]:
    out = {"id": rec["id"], "image": image, "task_type": rec["task_type"],
           "conversations": [{"from": "human", "value": human},
                             {"from": "gpt", "value": answer}]}
    if "answer" in rec:
        out["answer"] = rec["answer"]
    return out


def to_llava_onevision(rec: dict[str, Any]) -> dict[str, Any]:
    """LLaVA-OneVision record (image list, one "<image>" per image) of a DepictQA record."""
    question, answer = question_answer(rec)
    return _record(rec, record_images(rec), with_placeholders(question, rec), answer)


_PANEL_NAMES = {"Reference image": "Reference", "Evaluated image": "Evaluated"}


def panel_names(rec: dict[str, Any]) -> list[str]:
    """The labels drawn above the panels (short: they must fit small images)."""
    return [_PANEL_NAMES.get(label, label) for label in image_labels(rec)]


def panel_legend(labels: list[str]) -> str:
    """The sentence that names the panels of a canvas, left to right."""
    positions = panel_positions(len(labels))
    names = [f"the {pos} panel ({label})" for pos, label in zip(positions, labels)]
    joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"The image shows {len(labels)} panels side by side: {joined}."


def to_llava15(rec: dict[str, Any], composed: str | None = None) -> dict[str, Any]:
    """LLaVA 1.5 record of a DepictQA record: `image` one string, one leading "<image>".

    Args:
        rec: a single-image record, or any record when `composed` is given.
        composed: path of the record's canvas (compose_side_by_side) for multi-image ones.

    Raises:
        ValueError: a multi-image record without a canvas.
    """
    question, answer = question_answer(rec)
    images = record_images(rec)
    if composed is None:
        if len(images) != 1:
            msg = f"{rec['id']}: {len(images)} images; {REFUSED_HINT}"
            raise ValueError(msg)
        return _record(rec, images[0], f"{IMAGE_TOKEN}\n{question}", answer)
    names = panel_names(rec)
    out = _record(rec, composed, f"{IMAGE_TOKEN}\n{panel_legend(names)}\n{question}", answer)
    out["panels"] = [{"name": n, "position": p, "image": i} for n, p, i in
                     zip(names, panel_positions(len(images)), images)]
    return out


def _canvas(images: list[Image.Image], labels: list[str]) -> Image.Image:
    height = max(im.height for im in images)
    band = max(14, height // 8)
    size = int(band * 0.75)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # the largest font (down to 6 px) at which every label fits above its panel
    while size > 6 and any(probe.textlength(label, font=font(size)) > im.width - 2
                           for im, label in zip(images, labels)):
        size -= 1
    label_font = font(size)
    width = sum(im.width for im in images) + _GAP * (len(images) - 1)
    canvas = Image.new("RGB", (width, band + height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    x = 0
    for im, label in zip(images, labels):
        canvas.paste(im, (x, band + (height - im.height) // 2))
        draw.text((x + 1, (band - size) // 2), label, fill=_INK, font=label_font)
        x += im.width + _GAP
    return canvas


def compose_side_by_side(root: Path, rec: dict[str, Any], *, out_dir: str = COMPOSE_DIR) -> str:
    """Write (or keep) the record's canvas; return its path relative to `root`.

    Raises:
        FileNotFoundError: an image of the record is missing.
    """
    paths = record_images(rec)
    labels = panel_names(rec)
    h = hashlib.sha256(LAYOUT_VERSION.encode())
    data = []
    for rel in paths:
        blob = (root / rel).read_bytes()
        data.append(blob)
        h.update(b"\0" + rel.encode() + b"\0" + hashlib.sha256(blob).digest())
    h.update("\0".join(labels).encode())
    rel_out = f"{out_dir}/{h.hexdigest()[:24]}.png"
    target = root / rel_out
    if not target.is_file():
        images = [Image.open(io.BytesIO(b)).convert("RGB") for b in data]
        buf = io.BytesIO()
        _canvas(images, labels).save(buf, format="PNG")
        atomic_write_bytes(target, buf.getvalue())
    return rel_out
