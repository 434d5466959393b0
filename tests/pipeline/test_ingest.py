"""Ingest: bad references are recorded and skipped, odd modes are converted, paths are safe."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.build import run_build
from pipeline.ingest import (
    ingest_references,
    list_sources,
    load_reference,
    resize_short_side,
    safe_id,
)
from pipeline.manifest import ManifestError, Manifest
from pipeline.records import ReferenceRecord
from pipeline.store import Store, read_jsonl
from tests.pipeline.build_fixtures import PHOTOS, make_photo

PHOTO = PHOTOS["astro.png"]


def _png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A small valid PNG whose IHDR claims width x height (CRC fixed up)."""
    data = bytearray(_png_bytes(Image.new("RGB", (8, 8), (10, 20, 30))))
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes of fields
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


def _corpus(root: Path) -> dict[str, str | None]:
    """Write the bad/odd corpus; returns name -> expected error_type (None: valid)."""
    photo = make_photo(*PHOTO)
    good = _png_bytes(photo)
    (root / "good.png").write_bytes(good)
    (root / "empty.png").write_bytes(b"")
    (root / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "notes.jpg").write_text("this is not a JPEG, just text\n")
    grey16 = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    Image.fromarray(grey16).save(root / "grey16.png")
    photo.convert("CMYK").save(root / "cmyk.jpg", quality=95)
    rgba = photo.convert("RGBA")
    alpha = np.full((photo.height, photo.width), 255, np.uint8)
    alpha[:, :10] = 0  # fully transparent stripe
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(root / "rgba.png")
    photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=32).save(root / "palette.png")
    Image.new("RGB", (20, 20), (90, 90, 90)).save(root / "tiny.png")
    (root / "bomb.png").write_bytes(_bomb_png(50_000, 50_000))
    return {"good.png": None, "empty.png": "empty_file", "truncated.png": "truncated",
            "notes.jpg": "not_an_image", "grey16.png": None, "cmyk.jpg": None,
            "rgba.png": None, "palette.png": None, "tiny.png": "too_small",
            "bomb.png": "decompression_bomb"}


def test_bad_corpus_one_failure_each_and_build_finishes(tmp_path: Path) -> None:
    root = tmp_path / "refs"
    root.mkdir()
    expected = _corpus(root)
    manifest = Manifest(
        name="bad", seed=3, output=str(tmp_path / "out"),
        references={"root": str(root), "test_fraction": 0.0, "max_pixels": 10_000_000},
        resize={"short_side": 48}, chunk_size=4,
        counts={"refA_sd": {"train": 6}, "refAB_md": {"train": 3}},
    )
    summary = run_build(manifest, workers=1)
    store = Store(tmp_path / "out")
    failures = store.failures("ingest")
    got = {f.item_id: f for f in failures}
    bad = {name: err for name, err in expected.items() if err is not None}
    assert len(failures) == len(bad)  # exactly one record per bad file
    assert {name: f.error_type for name, f in got.items()} == bad
    for name, f in got.items():
        assert f.message.startswith(f"{name}: ") and f.path == name
    assert "decompression bomb" in got["bomb.png"].message
    assert "50000 x 50000" in got["bomb.png"].message
    assert "too small: 20 x 20" in got["tiny.png"].message

    refs = {r.source: r for r in read_jsonl(store.references_index, ReferenceRecord)}
    assert set(refs) == {n for n, err in expected.items() if err is None}
    assert refs["grey16.png"].orig_mode.startswith("I")
    assert refs["cmyk.jpg"].orig_mode == "CMYK"
    assert refs["palette.png"].orig_mode == "P"
    for r in refs.values():
        im = Image.open(store.abs(r.path))
        assert im.mode == "RGB" and min(im.size) == 48 and im.size == (r.width, r.height)
    assert summary["synthesize"]["refA_sd/train"]["samples"] == 6
    assert (tmp_path / "out/manifest.lock.json").exists()


def test_mode_conversion_rules(tmp_path: Path) -> None:
    grey16 = np.array([[0, 257, 65535, 32896]] * 40, np.uint16).repeat(10, axis=1)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    arr, mode, _ = load_reference(tmp_path / "g16.png", max_pixels=10**8)
    assert mode.startswith("I")
    assert arr.shape == (40, 40, 3)
    assert arr[0, ::10, 0].tolist() == [0, 1, 255, 128]  # round(v * 255 / 65535)

    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 200  # red where opaque, arbitrary red under transparency
    rgba[:, 20:, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    arr, _, _ = load_reference(tmp_path / "a.png", max_pixels=10**8)
    assert arr[0, 0].tolist() == [255, 255, 255]  # transparent: white
    assert arr[0, 30].tolist() == [200, 0, 0]  # opaque: unchanged

    grey = Image.new("L", (40, 40), 77)
    grey.save(tmp_path / "l.png")
    arr, _, _ = load_reference(tmp_path / "l.png", max_pixels=10**8)
    assert arr[0, 0].tolist() == [77, 77, 77]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    im = Image.new("RGB", (64, 40), (0, 0, 0))
    im.paste((255, 255, 255), (0, 0, 16, 40))  # white stripe on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    arr, _, (w, h) = load_reference(tmp_path / "rot.jpg", max_pixels=10**8)
    assert (w, h) == (64, 40)  # as stored
    assert arr.shape[:2] == (64, 40)  # as displayed: portrait
    assert arr[:10].mean() > 200 and arr[-10:].mean() < 50  # the stripe is now on top


def test_resize_rule() -> None:
    img = np.zeros((200, 301, 3), np.uint8)
    assert resize_short_side(img, 64).shape == (64, 96, 3)  # 301 * 64 / 200 = 96.3
    assert resize_short_side(img, 224).shape == (200, 301, 3)  # never upscaled
    assert resize_short_side(np.zeros((300, 100, 3), np.uint8), 50).shape == (150, 50, 3)


def test_ids_are_safe_and_unique(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "sub").mkdir(parents=True)
    photo = make_photo(*PHOTO)
    for name in ("a b.png", "a b.jpg", "sub/c.png", "c.png", ".hidden.png"):
        photo.save(root / name)
    m = Manifest(name="ids", references={"root": str(root), "glob": "**/*"})
    sources, failures = list_sources(m)
    assert not failures
    ids = {s.source: s.ref_id for s in sources}
    assert ids == {"a b.jpg": "a_b.jpg", "a b.png": "a_b.png", "c.png": "c.png",
                   "sub/c.png": "sub_c.png"}
    assert safe_id("../x y") == "_x_y"


def test_paths_cannot_escape_the_root(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    outside = tmp_path / "outside.png"
    make_photo(*PHOTO).save(outside)
    os.symlink(outside, root / "link.png")
    make_photo(*PHOTO).save(root / "ok.png")

    with pytest.raises(ValueError, match="leaves references.root"):
        Manifest(name="x", references={"root": str(root), "files": ["../outside.png"]})
    with pytest.raises(ValueError, match="is absolute"):
        Manifest(name="x", references={"root": str(root), "files": [str(outside)]})

    m = Manifest(name="x", output=str(tmp_path / "out"), references={"root": str(root)})
    summary = ingest_references(m, Store(tmp_path / "out"))
    failures = Store(tmp_path / "out").failures("ingest")
    assert summary["references"] == 1
    assert [(f.item_id, f.error_type) for f in failures] == [("link.png", "escapes_root")]

    split_file = tmp_path / "split.json"
    split_file.write_text('{"train": ["ok.png"], "test": ["../outside.png"]}')
    m = Manifest(name="x", references={"root": str(root), "split_file": str(split_file)})
    with pytest.raises(ManifestError, match="split_file.*leaves references.root"):
        list_sources(m)


def test_split_file_and_rerun_skips(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    for name, photo in zip(("p.png", "q.png", "r.png"), ("astro.png", "cat.png", "rocket.png")):
        make_photo(*PHOTOS[photo]).save(root / name)  # three photos (copies are one reference)
    (tmp_path / "split.yaml").write_text("train: [p.png, q.png]\ntest: [r.png]\n")
    m = Manifest(name="s", references={"root": str(root), "split_file": "split.yaml"},
                 base_dir=str(tmp_path), resize={"short_side": 40})
    store = Store(tmp_path / "out")
    first = ingest_references(m, store)
    assert first == {"done": 3, "skipped": 0, "failed": 0, "references": 3}
    splits = {r.ref_id: r.split for r in read_jsonl(store.references_index, ReferenceRecord)}
    assert splits == {"p": "train", "q": "train", "r": "test"}
    index_bytes = store.references_index.read_bytes()
    second = ingest_references(m, store)
    assert second["done"] == 0 and second["skipped"] == 3
    assert store.references_index.read_bytes() == index_bytes

    (tmp_path / "split2.yaml").write_text("train: [p.png]\ntest: [p.png]\n")
    m2 = m.model_copy(update={"references": m.references.model_copy(
        update={"split_file": "split2.yaml"})})
    with pytest.raises(ManifestError, match="listed in both"):
        list_sources(m2)


def test_listed_missing_file_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "folder.png").mkdir(parents=True)
    make_photo(*PHOTO).save(root / "ok.png")
    m = Manifest(name="x", references={"root": str(root),
                                       "files": ["ok.png", "gone.png", "folder.png"]})
    sources, failures = list_sources(m)
    assert [s.source for s in sources] == ["ok.png"]
    assert [(f.item_id, f.error_type) for f in failures] == [("folder.png", "not_a_file"),
                                                             ("gone.png", "not_found")]
