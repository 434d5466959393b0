"""Ingest: list the manifest's reference photos, validate, normalise and resize them.

Reads the manifest's `references` section and the files under its root; writes
`references/<ref_id>.png` (RGB, short side scaled to `resize.short_side` when larger),
`references.jsonl` (one `ReferenceRecord` per good file, sorted by ref_id) and
`failures/ingest.jsonl` (one `FailureRecord` per bad file, naming the file and the reason).
A bad file never stops the build.

Decoding rules (Pillow, each file decoded once):

* Decompression bombs: the header's width x height is checked against
  `references.max_pixels` before any pixel is decoded. Pillow's own guard (its default
  limit, for formats that check frames while decoding) stays on, and its
  `DecompressionBombWarning` is turned into an error.
* Truncated files fail (`.load()` is forced; `ImageFile.LOAD_TRUNCATED_IMAGES` stays off);
  empty files, files Pillow cannot identify (text named `.jpg`) and images whose short
  side is under 32 px fail too.
* EXIF orientation is applied first (`ImageOps.exif_transpose`).
* Modes to RGB: `RGB` as is; `L`, `1`, `CMYK`, `YCbCr`, `LAB`, `HSV` and `P` without
  transparency through Pillow's `convert("RGB")` (CMYK with Pillow's naive inversion; ICC
  profiles are not applied). Modes with alpha (`RGBA`, `LA`, `La`, `RGBa`, `PA`, and `P`
  with a transparency entry) are composited over white: transparent pixels of photos and
  scans hold arbitrary colours that dropping the alpha channel would reveal, and white
  is how viewers show them. 16-bit grey (`I;16*`, and `I` as Pillow opens 16-bit PNGs) is
  scaled to 8 bits by round(v * 255 / 65535) after clipping to [0, 65535]; float `F` is
  read as [0, 1] when its maximum is <= 1, else as [0, 255], clipped and rounded. Anything
  else is refused as an unsupported mode.
* Resize: when the short side is larger than `resize.short_side`, bicubic (Pillow, with its
  antialiasing support) to short side = `short_side` exactly and long side =
  round-half-up(long * short_side / short). Smaller images are kept at their size.

Reference ids are the file stems made filesystem-safe (characters outside `[A-Za-z0-9._-]`
become `_`); when two files would get the same id, each of them uses its whole relative
path instead (`dir/a.png` -> `dir_a_png`), so ids never depend on listing order.

Duplicates: references whose normalised PNG has the same sha256 are one photo. The one
with the smallest ref_id is kept; the others are recorded in `failures/ingest.jsonl` as
`duplicate` (the message names the id they duplicate) and their PNGs removed. The kept
one's split is decided by the content: the copies' split when they agree, else one of
their splits picked by the content hash; so no photo is in two splits.

Resume: references are processed in chunks (`references.chunks/<chunk:05d>.json`, written
atomically when a chunk completes, keyed by a hash of the chunk's sources and settings); a
re-run skips the chunks that are done.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import struct
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
import yaml
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from pipeline.effect import colour_stats
from pipeline.manifest import Manifest, ManifestError, check_relative_path
from pipeline.records import FailureRecord, ReferenceRecord
from pipeline.seeds import stable_hash
from pipeline.store import Store, atomic_write_bytes, atomic_write_json, atomic_write_jsonl

__all__ = [
    "INGEST_VERSION",
    "MIN_SIDE",
    "BadReferenceError",
    "SourceRef",
    "chunk_items",
    "decode_png",
    "encode_png",
    "ingest_chunk",
    "ingest_references",
    "list_sources",
    "load_reference",
    "merge_references",
    "resize_short_side",
    "safe_id",
]

log = logging.getLogger(__name__)

INGEST_VERSION = "2"  # 2: colourfulness and grey recorded. Bump when the decoding or resize rules change (invalidates chunks)
MIN_SIDE = 32  # the distortions' minimum image side
INGEST_CHUNK_SIZE = 32
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_ALPHA_MODES = {"RGBA", "LA", "La", "RGBa", "PA"}
_PLAIN_MODES = {"L", "1", "CMYK", "YCbCr", "LAB", "HSV", "P"}
_GUARD_LOCK = threading.Lock()
_BOMB_FILTER = False


class BadReferenceError(ValueError):
    """A reference file that cannot be used; `error_type` is a short machine-readable reason."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True)
class SourceRef:
    """One listed reference file: its path relative to the root, id and split."""

    source: str
    ref_id: str
    split: str


# --------------------------------------------------------------------------- PNG helpers
def encode_png(image: np.ndarray, level: int) -> bytes:
    """PNG bytes of an RGB uint8 image at zlib `level` (OpenCV's encoder: deterministic)."""
    ok, buf = cv2.imencode(
        ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, level]
    )
    if not ok:  # pragma: no cover - OpenCV reports no reason
        msg = f"PNG encoding failed for an image of shape {image.shape}"
        raise RuntimeError(msg)
    return buf.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    """RGB uint8 array of PNG bytes written by `encode_png`."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        msg = "cannot decode PNG data"
        raise ValueError(msg)
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


# --------------------------------------------------------------------------- listing
def safe_id(text: str) -> str:
    """Filesystem-safe id: characters outside [A-Za-z0-9._-] become '_', no leading dot."""
    out = _SAFE.sub("_", text).lstrip(".")
    return out or "_"


def _assign_ids(sources: Sequence[str]) -> dict[str, str]:
    stems: dict[str, list[str]] = {}
    for src in sources:
        stems.setdefault(safe_id(PurePosixPath(src).stem), []).append(src)
    ids: dict[str, str] = {}
    for stem, group in stems.items():
        for src in group:
            ids[src] = stem if len(group) == 1 else safe_id(src.replace("/", "_"))
    if len(set(ids.values())) != len(ids):  # e.g. 'a_b.png' vs 'a/b.png' both -> 'a_b_png'
        seen: dict[str, str] = {}
        for src in sorted(ids):
            rid = ids[src]
            if rid in seen:
                rid = f"{rid}_{stable_hash(src)[:8]}"
                ids[src] = rid
            seen[rid] = src
    return ids


def _hash_split(ref_id: str, test_fraction: float) -> str:
    u = int(stable_hash("split", ref_id)[:12], 16) / float(1 << 48)
    return "test" if u < test_fraction else "train"


def _read_split_file(path: Path) -> dict[str, list[str]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # YAML is a superset of JSON
    except FileNotFoundError:
        msg = f"references.split_file: {path} not found"
        raise ManifestError(msg) from None
    except yaml.YAMLError as err:
        msg = f"references.split_file: {path} is not valid JSON/YAML: {err}"
        raise ManifestError(msg) from err
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in data.values()
    ):
        msg = f"references.split_file: {path} must map split names to lists of file names"
        raise ManifestError(msg)
    for split, names in data.items():
        for i, name in enumerate(names):
            try:
                check_relative_path(name, field=f"{path.name}: {split}[{i}]")
            except ValueError as err:
                raise ManifestError(f"references.split_file: {err}") from None
    return data


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def list_sources(manifest: Manifest) -> tuple[list[SourceRef], list[FailureRecord]]:
    """The manifest's reference files with ids and splits, sorted by ref_id.

    Returns:
        (sources, failures): listed files that escape the root through a symlink, or that
        do not exist, come back as failure records (stage "ingest") instead of sources.

    Raises:
        ManifestError: the root does not exist, a split file is missing or malformed, or
            one file is listed in two splits.
    """
    cfg = manifest.references
    root = manifest.references_root()
    if not root.is_dir():
        msg = f"references.root: {root} is not a folder"
        raise ManifestError(msg)
    root = root.resolve()
    split_of: dict[str, str] = {}
    if cfg.splits is not None or cfg.split_file is not None:
        mapping = (cfg.splits if cfg.splits is not None
                   else _read_split_file(manifest.resolve(cfg.split_file or "")))
        for split, names in mapping.items():
            for name in names:
                key = PurePosixPath(name.replace("\\", "/")).as_posix()
                if key in split_of and split_of[key] != split:
                    msg = f"references: {name!r} is listed in both {split_of[key]!r} and {split!r}"
                    raise ManifestError(msg)
                split_of[key] = split
        listed = list(split_of)
    elif cfg.files is not None:
        listed = [PurePosixPath(f.replace("\\", "/")).as_posix() for f in cfg.files]
    else:
        listed = sorted(
            p.relative_to(root).as_posix()
            for p in root.glob(cfg.glob)
            if not any(part.startswith(".") for part in p.relative_to(root).parts)
            and (p.is_file() or p.is_symlink())
        )
    excluded = set(cfg.exclude)
    listed = sorted(
        {s for s in listed if s not in excluded and PurePosixPath(s).name not in excluded}
    )
    failures: list[FailureRecord] = []
    good: list[str] = []
    for src in listed:
        path = root / src
        if not _inside(root, path):
            failures.append(_failure(src, "escapes_root",
                                     f"{src}: resolves outside the references root {root} "
                                     "(symlink); refused"))
        elif not path.exists():
            failures.append(_failure(src, "not_found", f"{src}: no such file under {root}"))
        elif not path.is_file():
            failures.append(_failure(src, "not_a_file", f"{src}: not a regular file"))
        else:
            good.append(src)
    ids = _assign_ids(good)
    sources = [
        SourceRef(src, ids[src], split_of.get(src) or _hash_split(ids[src], cfg.test_fraction))
        for src in good
    ]
    sources.sort(key=lambda s: s.ref_id)
    return sources, failures


def _failure(source: str, error_type: str, message: str) -> FailureRecord:
    return FailureRecord(stage="ingest", item_id=source, error_type=error_type,
                         message=message, path=source)


# --------------------------------------------------------------------------- decoding
def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode == "RGB":
        return im
    if mode == "P" and "transparency" in im.info:
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode in _PLAIN_MODES:
        return im.convert("RGB")
    if mode.startswith("I;16") or mode == "I":
        v = np.asarray(im).astype(np.float64)
        grey = np.rint(np.clip(v, 0, 65535) * (255.0 / 65535.0)).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "F":
        v = np.asarray(im).astype(np.float64)
        v = np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
        scale = 255.0 if v.size and v.max() <= 1.0 else 1.0
        grey = np.rint(np.clip(v * scale, 0, 255)).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    msg = f"unsupported image mode {mode!r}"
    raise BadReferenceError("unsupported_mode", msg)


def _open_header(path: Path) -> Image.Image:
    """Open (header only) with Pillow's size guard off: our own check follows."""
    # MAX_IMAGE_PIXELS is a module global of Pillow: swap it under a lock (threads) and
    # only around the header read, which decodes no pixels.
    with _GUARD_LOCK:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = old


def _install_bomb_filter() -> None:
    # Pillow warns (instead of failing) for sizes between its limit and twice it, e.g. for
    # GIF frames checked while decoding: make that an error, process-wide and once (a
    # catch_warnings() block per call is not thread-safe).
    global _BOMB_FILTER
    if not _BOMB_FILTER:
        warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
        _BOMB_FILTER = True


def load_reference(path: Path, *, max_pixels: int) -> tuple[np.ndarray, str, tuple[int, int]]:
    """Decode one reference file to RGB uint8 (EXIF orientation applied).

    Returns:
        (image H x W x 3 uint8, original mode, original (width, height) as stored).

    Raises:
        BadReferenceError: empty, not an image, decompression bomb, truncated or corrupt,
            unsupported mode, or smaller than 32 px; the message says which.
    """
    if path.stat().st_size == 0:
        raise BadReferenceError("empty_file", "empty file (0 bytes)")
    _install_bomb_filter()
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # Pillow's default; truncation must fail here
    try:
        im = _open_header(path)
    except UnidentifiedImageError:
        msg = "not an image (Pillow cannot identify the file format)"
        raise BadReferenceError("not_an_image", msg) from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as err:
        msg = f"corrupt image header: {type(err).__name__}: {err}"
        raise BadReferenceError("corrupt", msg) from None
    with im:
        w, h = im.size
        if w * h > max_pixels:
            msg = (f"decompression bomb guard: header declares {w} x {h} = {w * h} "
                   f"pixels > references.max_pixels {max_pixels}")
            raise BadReferenceError("decompression_bomb", msg)
        mode = im.mode
        try:
            im.load()
            arr = np.array(_to_rgb(ImageOps.exif_transpose(im)), dtype=np.uint8)
        except BadReferenceError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            msg = f"decompression bomb guard: {err}"
            raise BadReferenceError("decompression_bomb", msg) from None
        except OSError as err:
            if "truncated" in str(err).lower():
                raise BadReferenceError("truncated", f"truncated image data: {err}") from None
            raise BadReferenceError("corrupt", f"corrupt image data: {err}") from None
        except (SyntaxError, ValueError, EOFError, struct.error) as err:
            msg = f"corrupt image data: {type(err).__name__}: {err}"
            raise BadReferenceError("corrupt", msg) from None
    if min(arr.shape[:2]) < MIN_SIDE:
        msg = f"too small: {arr.shape[1]} x {arr.shape[0]} px, sides must be >= {MIN_SIDE}"
        raise BadReferenceError("too_small", msg)
    return arr, mode, (w, h)


def resize_short_side(image: np.ndarray, short_side: int) -> np.ndarray:
    """Bicubic downscale so the short side is `short_side` (kept when already smaller)."""
    h, w = image.shape[:2]
    short = min(h, w)
    if short <= short_side:
        return image
    # round-half-up in integers: long * S / short
    if h <= w:
        new_h, new_w = short_side, (2 * w * short_side + short) // (2 * short)
    else:
        new_w, new_h = short_side, (2 * h * short_side + short) // (2 * short)
    out = Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BICUBIC)
    return np.asarray(out, dtype=np.uint8)


# --------------------------------------------------------------------------- stage
def chunk_items(items: Sequence[Any], chunk_size: int) -> list[tuple[int, list[Any]]]:
    """Split `items` into consecutive chunks: [(chunk_index, items), ...]."""
    if chunk_size < 1:
        msg = f"chunk_size must be >= 1, got {chunk_size}"
        raise ValueError(msg)
    return [(i // chunk_size, list(items[i:i + chunk_size]))
            for i in range(0, len(items), chunk_size)]


def _chunks_dir(store: Store) -> Path:
    return store.root / "references.chunks"


def _chunk_key(manifest: Manifest, sources: Sequence[SourceRef]) -> str:
    return stable_hash(INGEST_VERSION, manifest.resize.short_side, manifest.png_compress_level,
                       manifest.references.max_pixels, str(manifest.references_root()),
                       *(f"{s.source}|{s.ref_id}|{s.split}" for s in sources))


def ingest_chunk(
    manifest: Manifest, store: Store | str | Path, chunk_index: int, sources: Sequence[SourceRef]
) -> dict[str, int]:
    """Ingest one chunk of sources; idempotent, safe in any process or thread.

    Writes the resized PNGs and `references.chunks/<chunk_index:05d>.json` (records and
    failures of the chunk). A chunk whose file exists with the same key is skipped.

    Returns:
        {"done": n, "skipped": n, "failed": n} (references in this chunk).
    """
    store = Store(store) if not isinstance(store, Store) else store
    path = _chunks_dir(store) / f"{chunk_index:05d}.json"
    key = _chunk_key(manifest, sources)
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            old = {}
        if old.get("key") == key:
            return {"done": 0, "skipped": len(old["references"]), "failed": len(old["failures"])}
    root = manifest.references_root().resolve()
    records: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for src in sources:
        try:
            arr, mode, (ow, oh) = load_reference(root / src.source,
                                                 max_pixels=manifest.references.max_pixels)
        except BadReferenceError as err:
            failures.append(_failure(src.source, err.error_type,
                                     f"{src.source}: {err}").model_dump(mode="json"))
            continue
        except OSError as err:  # unreadable file (permissions, I/O error)
            failures.append(_failure(src.source, "unreadable",
                                     f"{src.source}: cannot read: {err}").model_dump(mode="json"))
            continue
        arr = resize_short_side(arr, manifest.resize.short_side)
        data = encode_png(arr, manifest.png_compress_level)
        out = store.reference_image(src.ref_id)
        atomic_write_bytes(out, data)
        colourfulness, grey = colour_stats(arr)
        rec = ReferenceRecord(
            ref_id=src.ref_id, source=src.source, split=src.split,
            path=f"references/{src.ref_id}.png", sha256=hashlib.sha256(data).hexdigest(),
            width=int(arr.shape[1]), height=int(arr.shape[0]),
            orig_width=ow, orig_height=oh, orig_mode=mode,
            colourfulness=colourfulness, grey=grey,
        )
        records.append(rec.model_dump(mode="json"))
    atomic_write_json(path, {"chunk": chunk_index, "key": key, "references": records,
                             "failures": failures}, indent=None)
    return {"done": len(records), "skipped": 0, "failed": len(failures)}


def merge_references(
    manifest: Manifest, store: Store | str | Path, sources: Sequence[SourceRef],
    listing_failures: Sequence[FailureRecord] = (), chunk_size: int = INGEST_CHUNK_SIZE,
) -> dict[str, int]:
    """Write references.jsonl and failures/ingest.jsonl from the chunk files (deterministic).

    Raises:
        RuntimeError: a chunk of `sources` has not been ingested (or is stale).
    """
    store = Store(store) if not isinstance(store, Store) else store
    records: list[ReferenceRecord] = []
    failures: list[FailureRecord] = list(listing_failures)
    chunks = chunk_items(sources, chunk_size)
    missing = []
    for index, chunk in chunks:
        path = _chunks_dir(store) / f"{index:05d}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            data = {}
        if data.get("key") != _chunk_key(manifest, chunk):
            missing.append(index)
            continue
        records += [ReferenceRecord.model_validate(r) for r in data["references"]]
        failures += [FailureRecord.model_validate(f) for f in data["failures"]]
    if missing:
        msg = f"ingest chunks not done (or stale): {missing}; run ingest_chunk for them"
        raise RuntimeError(msg)
    for stale in sorted(_chunks_dir(store).glob("*.json")):
        if not stale.stem.isdigit() or int(stale.stem) >= len(chunks):
            stale.unlink()
    records.sort(key=lambda r: r.ref_id)
    records, duplicates = _deduplicate(store, records)
    failures += duplicates
    failures.sort(key=lambda f: f.item_id)
    atomic_write_jsonl(store.references_index, records)
    atomic_write_jsonl(store.failures_path("ingest"), failures)
    return {"references": len(records), "failed": len(failures)}


def _group_split(splits: Sequence[str], sha256: str) -> str:
    """The split of a group of identical references, from its content: the members' split
    when they agree, else one of their splits picked by the content hash."""
    choices = sorted(set(splits))
    if len(choices) == 1:
        return choices[0]
    return choices[int(sha256[:12], 16) % len(choices)]


def _deduplicate(store: Store, records: list[ReferenceRecord]
                 ) -> tuple[list[ReferenceRecord], list[FailureRecord]]:
    """Keep one reference per content (sha256 of the normalised PNG): the smallest ref_id,
    in the split its content decides (`_group_split`), so no photo is in two splits. The
    others become `duplicate` failures naming the id they duplicate; their PNGs go."""
    groups: dict[str, list[ReferenceRecord]] = {}
    for rec in records:  # sorted by ref_id: the first of a group is kept
        groups.setdefault(rec.sha256, []).append(rec)
    kept: list[ReferenceRecord] = []
    failures: list[FailureRecord] = []
    for sha, group in groups.items():
        first = group[0]
        split = _group_split([r.split for r in group], sha)
        kept.append(first if first.split == split else first.model_copy(update={"split": split}))
        for dup in group[1:]:
            failures.append(_failure(
                dup.source, "duplicate",
                f"{dup.source}: same content as {first.source} (reference {first.ref_id}, "
                f"kept in {split}); duplicate of {first.ref_id}"))
            store.reference_image(dup.ref_id).unlink(missing_ok=True)
    kept.sort(key=lambda r: r.ref_id)
    return kept, failures


def ingest_references(
    manifest: Manifest,
    store: Store | str | Path,
    *,
    executor: Executor | None = None,
    on_chunk: Callable[[dict[str, int]], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """The whole ingest stage: list, ingest every chunk (resuming), merge.

    Args:
        manifest: the build manifest.
        store: the dataset folder.
        executor: run chunks on this executor (e.g. a process pool); None: in this process.
        on_chunk: called with each chunk's summary as it completes (progress).
        on_start: called once with the number of chunks before the first one runs.

    Returns:
        {"done": n, "skipped": n, "failed": n, "references": n} (failed includes files
        refused while listing).
    """
    store = Store(store) if not isinstance(store, Store) else store
    sources, listing_failures = list_sources(manifest)
    chunks = chunk_items(sources, INGEST_CHUNK_SIZE)
    if on_start is not None:
        on_start(len(chunks))
    total = {"done": 0, "skipped": 0, "failed": len(listing_failures)}
    if executor is None:
        results: Any = (ingest_chunk(manifest, store, i, c) for i, c in chunks)
    else:
        futures = [executor.submit(ingest_chunk, manifest, store.root, i, c) for i, c in chunks]
        results = (f.result() for f in as_completed(futures))
    for summary in results:
        for k in total:
            total[k] += summary[k]
        if on_chunk is not None:
            on_chunk(summary)
    merged = merge_references(manifest, store, sources, listing_failures)
    total["references"] = merged["references"]
    log.info("ingest: %s", total)
    return total
