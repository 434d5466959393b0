"""Shared reading helpers of the adapters: tolerant headers, CSV and xlsx tables read the
same way, case-insensitive file lookup, and a collector that turns every bad row into a
`FailureRecord` instead of dropping it.

Header variants accepted everywhere: a UTF-8 byte-order mark, surrounding whitespace,
any case, and spaces or hyphens instead of underscores (`" Image name"` -> `image_name`).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    "read_sheet",
    "read_text",
    "require_columns",
    "sheet_rows",
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


def sheet_rows(path: Path) -> list[tuple[object, ...]]:
    """All rows (values) of the first sheet of an xlsx workbook, header first."""
    try:
        import openpyxl
    except ImportError as err:  # openpyxl is the `labels` extra
        msg = f"{path}: reading .xlsx label files needs openpyxl: pip install 'dqgen[labels]'"
        raise ImportError(msg) from err
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        return list(wb.worksheets[0].iter_rows(values_only=True))
    finally:
        wb.close()


def read_sheet(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, object]]]]:
    """Header keys and `(row number, {key: value})` rows of an xlsx workbook's first sheet.

    The xlsx counterpart of `read_csv`: rows whose cells are all empty are skipped, short
    rows get None for the missing keys. Values are kept as openpyxl gives them (numbers
    stay numbers; text is not stripped).

    Raises:
        DatasetLayoutError: the sheet has no rows at all.
    """
    sheet = sheet_rows(path)
    if not sheet:
        msg = f"{path}: empty sheet"
        raise DatasetLayoutError(msg)
    header = [header_key(h) for h in sheet[0]]

    def rows() -> Iterator[tuple[int, dict[str, object]]]:
        for row, values in enumerate(sheet[1:], start=2):
            cells = {k: (values[i] if i < len(values) else None) for i, k in enumerate(header)}
            if all(v is None or str(v).strip() == "" for v in cells.values()):
                continue
            yield row, cells

    return header, rows()


def require_columns(path: Path, header: Sequence[str], columns: Iterable[str]) -> None:
    """Check that the header keys of label file `path` include every one of `columns`.

    Raises:
        DatasetLayoutError: names the missing columns and the header as read.
    """
    missing = [c for c in columns if c not in header]
    if missing:
        msg = f"{path}: missing column(s) {', '.join(missing)}; header is {header}"
        raise DatasetLayoutError(msg)


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
        label: the label key that decides every image's score (`mos`, `dmos`, ...).
        scale: that label's native scale.
        rule: the normalisation rule, in words, written into every record.

    `label`, `scale` and `rule` are the same for all images of a dataset; PIPAL sets
    `scale` and `rule` once the ELO range of the rows read is known, and BAPPS (pairs
    only, no images) leaves them unset.
    """

    def __init__(
        self,
        dataset: str,
        root: Path,
        label_file: Path,
        *,
        label: str = "",
        scale: Scale | None = None,
        rule: str = "",
    ) -> None:
        self.dataset = dataset
        self.root = Path(root)
        self.label_file = Path(label_file)
        self.label = label
        self.scale = scale
        self.rule = rule
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

    def _failure(self, where: str, error_type: str, message: str, path: Path) -> None:
        """Append one labels-stage failure with id `<dataset>:<where>`."""
        self.out.failures.append(
            FailureRecord(
                stage="labels",
                item_id=f"{self.dataset}:{where}",
                error_type=error_type,
                message=message,
                path=str(path),
            )
        )

    def fail(self, row: int, error_type: str, reason: str) -> None:
        """Record a bad row; the message names file, row and reason."""
        self._failed.add((self.label_rel, row))
        self._failure(
            f"{self.label_rel}:{row}",
            error_type,
            f"{self.label_file}: row {row}: {reason}",
            self.label_file,
        )

    def fail_at(self, where: str, error_type: str, reason: str, path: Path | None = None) -> None:
        """Record a failure of an item that is not a row of a label file (BAPPS triplets)."""
        target = self.root / where
        self._failure(where, error_type, f"{target}: {reason}", path or target)

    def blank(self, row: int, what: str, *cells: str) -> bool:
        """True, recording a `bad_row` failure "empty <what>", when any of `cells` is empty.

        `cells` are the row's key cells (image name, prompt, ...), already stripped.
        """
        if all(cells):
            return False
        self.fail(row, "bad_row", f"empty {what}")
        return True

    def read_labels(
        self,
        row: int,
        cells: Mapping[str, object],
        optional: Iterable[str] = (),
        *,
        column: str | None = None,
    ) -> dict[str, float | None] | None:
        """The labels of one table row: the required score (the collector's `label` key),
        then each `optional` key that is a column of the table (`cells` holds every header
        key).

        `column` is the score's column as the failure message names it (default the key);
        optional cells are named by their key. None, with the failure recorded by `number`,
        when the required score is bad; a bad optional cell is recorded too, but its row
        still gets its labels (None for that cell) and is rejected later by `image`.
        """
        value = self.number(row, cells[self.label], column or self.label)
        if value is None:
            return None
        labels: dict[str, float | None] = {self.label: value}
        for key in optional:
            if key in cells:
                labels[key] = self.number(row, cells[key], key, required=False)
        return labels

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
        **fields: object,
    ) -> LabelledImage | None:
        """Build and keep one image record, scored by the collector's label, scale and rule,
        or record why the row is unusable.

        `path` None means the file was not found (a `missing_file` failure); None values in
        `labels` are dropped (absent optional labels). The first occurrence of an image id
        wins; later ones are `duplicate` failures naming the first row.
        """
        label, scale = self.label, self.scale
        if scale is None:
            msg = f"{self.dataset}: the collector has no scale to score images with"
            raise TypeError(msg)
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
            rule=self.rule,
            label_file=self.label_rel,
            row=row,
            **fields,  # type: ignore[arg-type]
        )
        self._seen[image_id] = row
        self.out.images.append(record)
        return record
