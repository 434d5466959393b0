"""Shared reading helpers of the adapters: tolerant headers, case-insensitive file lookup,
and a collector that turns every bad row into a `FailureRecord` instead of dropping it.

Header variants accepted everywhere: a UTF-8 byte-order mark, surrounding whitespace,
any case, and spaces or hyphens instead of underscores (`" Image name"` -> `image_name`).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from pipeline.labels.records import LabelledImage, Scale, normalise
from pipeline.labels.registry import LabelSet
from pipeline.records import FailureRecord

__all__ = [
    "Collector",
    "DatasetLayoutError",
    "FileIndex",
    "find_file",
    "header_key",
    "parse_number",
    "read_csv",
    "read_text",
]


class DatasetLayoutError(ValueError):
    """The dataset root does not have the layout the adapter expects (names the file)."""


def header_key(name: object) -> str:
    """Canonical column key: no BOM, trimmed, lower case, `_` for spaces and hyphens."""
    text = str(name if name is not None else "").replace("\ufeff", "").strip().lower()
    for ch in (" ", "-", "\t"):
        text = text.replace(ch, "_")
    while "__" in text:
        text = text.replace("__", "_")
    return text


def parse_number(raw: object) -> float:
    """A float from a cell; raises ValueError naming the value when it is not a number.

    NaN is returned as NaN (callers decide); empty cells raise.
    """
    if isinstance(raw, bool):
        msg = f"not a number: {raw!r}"
        raise ValueError(msg)
    if isinstance(raw, (int, float)):
        return float(raw)
    text = str(raw if raw is not None else "").strip()
    if not text:
        msg = "empty value"
        raise ValueError(msg)
    try:
        return float(text)
    except ValueError:
        msg = f"not a number: {text!r}"
        raise ValueError(msg) from None


def read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:  # some label files were saved by Excel in a Windows code page
        return data.decode("latin-1")


def read_csv(
    path: Path, *, delimiter: str = ","
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """Header keys and `(line number, {key: cell})` rows of a CSV file (blank lines skipped).

    Rows with fewer cells than the header get empty strings for the missing keys, so the
    caller reports them as bad rows.
    """
    # a StringIO keeps newlines inside quoted cells (long prompts) intact
    reader = csv.reader(io.StringIO(read_text(path), newline=""), delimiter=delimiter)
    try:
        header = [header_key(h) for h in next(reader)]
    except StopIteration:
        msg = f"{path}: empty file (no header row)"
        raise DatasetLayoutError(msg) from None

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            row = {k: (cells[i].strip() if i < len(cells) else "") for i, k in enumerate(header)}
            yield reader.line_num, row

    return header, rows()


class FileIndex:
    """Case-insensitive file lookup under a root (one directory listing per folder).

    Published datasets mix cases (TID2013: `i01_01_1.bmp` beside `I01.BMP`), and their label
    files do not always match the files' case on disk; lookups resolve to the real name.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._dirs: dict[str, dict[str, str]] = {}

    def _listing(self, rel_dir: str) -> dict[str, str]:
        if rel_dir not in self._dirs:
            listing: dict[str, str] = {}
            folder = self.root / rel_dir if rel_dir else self.root
            try:
                with os.scandir(folder) as it:
                    for entry in it:
                        listing.setdefault(entry.name.lower(), entry.name)
            except (FileNotFoundError, NotADirectoryError):
                pass
            self._dirs[rel_dir] = listing
        return self._dirs[rel_dir]

    def find(self, rel_path: str) -> str | None:
        """The real relative POSIX path of `rel_path` (any case), or None when absent."""
        parts = [p for p in rel_path.replace("\\", "/").split("/") if p and p != "."]
        if not parts or ".." in parts:
            return None
        real: list[str] = []
        for part in parts:
            name = self._listing("/".join(real)).get(part.lower())
            if name is None:
                return None
            real.append(name)
        return "/".join(real)

    def first_dir(self, candidates: Sequence[str]) -> str | None:
        """The first of `candidates` that exists as a folder (real case), or None."""
        for cand in candidates:
            found = self.find(cand) if cand else ""
            if found is not None and (self.root / found).is_dir():
                return found
        return None


def find_file(root: Path, candidates: Sequence[str], what: str) -> Path:
    """The first existing file of `candidates` under `root` (case-insensitive).

    Raises:
        DatasetLayoutError: none exists; the message lists what was looked for.
    """
    index = FileIndex(root)
    for cand in candidates:
        found = index.find(cand)
        if found is not None and (root / found).is_file():
            return root / found
    msg = f"{root}: {what} not found (looked for {', '.join(candidates)})"
    raise DatasetLayoutError(msg)


class Collector:
    """Accumulates the images of one label file and a failure for every bad row.

    Args:
        dataset: adapter name (goes into records and failure ids).
        root: dataset root folder.
        label_file: the label file being read (absolute path).
    """

    def __init__(self, dataset: str, root: Path, label_file: Path) -> None:
        self.dataset = dataset
        self.root = Path(root)
        self.label_file = Path(label_file)
        self.out = LabelSet()
        self._seen: dict[str, int] = {}
        self._rel: tuple[Path, str] | None = None
        self._failed: set[tuple[str, int]] = set()  # rows with any failure never become records

    @property
    def label_rel(self) -> str:
        """The current label file relative to the dataset root (cached per file)."""
        if self._rel is None or self._rel[0] != self.label_file:
            try:
                rel = self.label_file.resolve().relative_to(self.root.resolve()).as_posix()
            except ValueError:
                rel = self.label_file.name
            self._rel = (self.label_file, rel)
        return self._rel[1]

    def use(self, label_file: Path) -> None:
        """Switch to another label file of the same dataset (PIPAL: one file per reference)."""
        self.label_file = Path(label_file)

    def fail(self, row: int, error_type: str, reason: str) -> None:
        """Record a bad row; the message names file, row and reason."""
        self._failed.add((self.label_rel, row))
        self.out.failures.append(
            FailureRecord(
                stage="labels",
                item_id=f"{self.dataset}:{self.label_rel}:{row}",
                error_type=error_type,
                message=f"{self.label_file}: row {row}: {reason}",
                path=str(self.label_file),
            )
        )

    def fail_at(self, where: str, error_type: str, reason: str, path: Path | None = None) -> None:
        """Record a failure of an item that is not a row of a label file (BAPPS triplets)."""
        self.out.failures.append(
            FailureRecord(
                stage="labels",
                item_id=f"{self.dataset}:{where}",
                error_type=error_type,
                message=f"{self.root / where}: {reason}",
                path=str(path or self.root / where),
            )
        )

    def number(self, row: int, raw: object, column: str, *, required: bool = True) -> float | None:
        """Parse one cell; a bad or NaN required value records a failure and gives None.

        An optional cell that is empty or NaN gives None without a failure (the label is
        simply absent); an optional cell holding garbage is still a bad row.
        """
        try:
            value = parse_number(raw)
        except ValueError as err:
            if not required and str(raw if raw is not None else "").strip() == "":
                return None
            self.fail(row, "bad_number", f"column {column!r}: {err}")
            return None
        if math.isnan(value) or math.isinf(value):
            if required:
                self.fail(row, "nan_score", f"column {column!r}: {raw!r} is not a finite score")
            return None
        return value

    def image(
        self,
        row: int,
        *,
        image_id: str,
        path: str | None,
        labels: dict[str, float | None],
        label: str,
        scale: Scale,
        rule: str,
        **fields: object,
    ) -> LabelledImage | None:
        """Build and keep one image record, or record why the row is unusable.

        `path` None means the file was not found (a `missing_file` failure); None values in
        `labels` are dropped (absent optional labels). The first occurrence of an image id
        wins; later ones are `duplicate` failures naming the first row.
        """
        if (self.label_rel, row) in self._failed:
            return None  # already reported (e.g. a bad optional cell)
        if image_id in self._seen:
            self.fail(
                row, "duplicate", f"image {image_id!r} already listed at row {self._seen[image_id]}"
            )
            return None
        if path is None:
            self.fail(
                row, "missing_file", f"image file of {image_id!r} not found under {self.root}"
            )
            return None
        clean = {k: float(v) for k, v in labels.items() if v is not None}
        if label not in clean:
            return None  # the failure was recorded when the cell was parsed
        try:
            score = normalise(clean[label], scale)
        except ValueError as err:
            self.fail(row, "out_of_range", f"{label}: {err}")
            return None
        record = LabelledImage(
            dataset=self.dataset,
            image_id=image_id,
            path=path,
            labels=clean,
            label=label,
            scale=scale,
            score=score,
            rule=rule,
            label_file=self.label_rel,
            row=row,
            **fields,  # type: ignore[arg-type]
        )
        self._seen[image_id] = row
        self.out.images.append(record)
        return record
