"""The labels stage: read every human-labelled source of a manifest and write its records,
splits and instant-rating pairs into the dataset folder.

Writes (paths relative to the dataset root)::

    labels/<dataset>/images.jsonl      LabelledImage per usable row, with its assigned split
    labels/<dataset>/pairs.jsonl       HumanPair per kept pair (margin, cap applied)
    labels/<dataset>/splits.json       the split rule, seed and every repeat's image ids
    labels/<dataset>/failures.jsonl    FailureRecord per bad row of this dataset
    labels/<dataset>/summary.json      counts, rule, margin, cap, notes
    labels/<dataset>/src               symlink to the source root (images: link), or the
                                       copied images the pairs use (images: copy)
    pairs/<dataset>/<split>.jsonl      ComparisonPair per pair: what `pipeline.assemble`
                                       turns into refAB_brief / AB_brief records
    failures/labels.jsonl              all datasets' failures (rewritten each run)

Task records are not written here: `pipeline.assemble.assemble_tasks` reads pairs/ and
builds the refAB_brief (pairs with a reference) and AB_brief (all pairs) records with the
same question pools and answer forms as the synthetic pairs; `dqgen labels build` calls it
for those two tasks, `dqgen build` runs it as its assemble stage.

Label files are re-read on every run (seconds; BAPPS about a minute), and each output is
rewritten only when its bytes change, so a re-run leaves an unchanged dataset untouched.
A source whose root or label file is missing or malformed gives one failure record naming
it, and the stage goes on with the other sources.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pipeline.labels import get_adapter
from pipeline.labels._io import DatasetLayoutError
from pipeline.labels.pairs import filter_native_pairs, pairs_from_images
from pipeline.labels.records import HumanPair, LabelledImage
from pipeline.labels.registry import AdapterSpec, LabelSet
from pipeline.labels.splits import (
    apply_to_images,
    apply_to_pairs,
    assign_splits,
    group_by_for,
    grouping_violations,
)
from pipeline.manifest import LabelSourceConfig, Manifest
from pipeline.records import FailureRecord
from pipeline.seeds import derive_seed
from pipeline.store import Store, atomic_write_bytes, read_jsonl

__all__ = ["build_labels", "comparison_pairs", "labels_dir", "resolve_cap"]

log = logging.getLogger(__name__)


def labels_dir(store: Store, dataset: str) -> Path:
    """labels/<dataset>/ of a dataset folder."""
    return store.root / "labels" / dataset


def _write_if_changed(path: Path, data: bytes) -> bool:
    if path.is_file() and path.read_bytes() == data:
        return False
    atomic_write_bytes(path, data)
    return True


def _jsonl_bytes(rows: Iterable[Any]) -> bytes:
    lines = []
    for r in rows:
        lines.append(
            r.model_dump_json()
            if hasattr(r, "model_dump_json")
            else json.dumps(r, ensure_ascii=False)
        )
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def resolve_cap(
    src: LabelSourceConfig, spec: AdapterSpec, n_images: int
) -> int | dict[str, int] | None:
    """The pair cap of a source: its `max_pairs`, else the adapter's default (None = all)."""
    cap = src.max_pairs if src.max_pairs is not None else spec.max_pairs
    if cap == "all":
        return None
    if cap == "images":
        return n_images
    return cap  # type: ignore[return-value]


def _link_source(store: Store, dataset: str, root: Path) -> None:
    link = labels_dir(store, dataset) / "src"
    link.parent.mkdir(parents=True, exist_ok=True)
    target = root.resolve()
    if link.is_symlink():
        if Path(os.readlink(link)) == target:
            return
        link.unlink()
    elif link.exists():
        if link.is_dir():  # left by an earlier build with images: copy
            shutil.rmtree(link)
        else:
            link.unlink()
    tmp = link.with_name(f".src.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp, target_is_directory=True)
    os.replace(tmp, link)  # atomic swap: readers never see a missing link


def _copy_images(store: Store, dataset: str, root: Path, rel_paths: Iterable[str]) -> int:
    dest_root = labels_dir(store, dataset) / "src"
    if dest_root.is_symlink():
        dest_root.unlink()
    copied = 0
    for rel in sorted(set(rel_paths)):
        src, dst = root / rel, dest_root / rel
        if dst.is_file() and dst.stat().st_size == src.stat().st_size:
            continue  # resume: already copied
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        copied += 1
    return copied


def comparison_pairs(pairs: Iterable[HumanPair], *, prefix: str, seed: int) -> list[dict[str, Any]]:
    """Human pairs as `pipeline.assemble.ComparisonPair` rows (paths under `prefix`)."""
    from pipeline.assemble import ComparisonPair

    out = []
    for p in pairs:
        extra: dict[str, Any] = {
            "dataset": p.dataset,
            "label": p.label,
            "A_id": p.A_id,
            "B_id": p.B_id,
            "norm_A": p.norm_A,
            "norm_B": p.norm_B,
            "difference": p.difference,
            "margin": p.margin,
        }
        if p.ref_id is not None:
            extra["ref_id"] = p.ref_id
        if p.prompt is not None:
            extra["prompt"] = p.prompt
        extra.update(p.attributes)
        out.append(
            ComparisonPair(
                pair_id=p.pair_id,
                split=p.split,
                image_ref=f"{prefix}{p.ref_path}" if p.ref_path is not None else None,
                image_A=f"{prefix}{p.A_path}",
                image_B=f"{prefix}{p.B_path}",
                A_better_B=p.A_better_B,
                provenance="human",
                judge=p.label,
                score_A=p.score_A,
                score_B=p.score_B,
                seed=derive_seed(seed, "human_pair", p.split, p.pair_id, 0),
                source=p.dataset,
                extra=extra,
            ).model_dump(mode="json")
        )
    return out


def _source_failure(src: LabelSourceConfig, root: Path, err: Exception) -> FailureRecord:
    return FailureRecord(
        stage="labels",
        item_id=f"{src.dataset}:{root}",
        error_type=type(err).__name__,
        message=str(err),
        path=str(root),
    )


def _build_one(
    manifest: Manifest, store: Store, src: LabelSourceConfig
) -> tuple[dict[str, Any], list[FailureRecord]]:
    spec = get_adapter(src.dataset)
    root = manifest.resolve(src.root)
    out_dir = labels_dir(store, spec.name)
    if not root.is_dir():
        err = DatasetLayoutError(
            f"{root}: dataset root folder of {spec.title} not found "
            f"(set sources[].root in the manifest)"
        )
        return {"dataset": spec.name, "error": str(err)}, [_source_failure(src, root, err)]
    try:
        data: LabelSet = spec.read(root)
    except Exception as err:  # a corrupt workbook or .mat raises library-specific types
        if not isinstance(err, (DatasetLayoutError, OSError, ImportError)):
            err = DatasetLayoutError(
                f"{root}: {spec.title} label files unreadable: " f"{type(err).__name__}: {err}"
            )
        return {"dataset": spec.name, "error": str(err)}, [_source_failure(src, root, err)]

    rule = src.split or spec.split
    group_by = group_by_for(rule, spec.kind)
    if spec.kind == "2afc":
        items = [(p.pair_id, p.ref_id or p.pair_id, p.split) for p in data.pairs]
    else:
        items = [(im.image_id, im.group(group_by), im.split) for im in data.images]
    repeats = assign_splits(
        items,
        rule,
        seed=manifest.seed,
        dataset=spec.name,
        test_fraction=src.test_fraction,
        repeats=src.repeats,
    )
    images: list[LabelledImage] = apply_to_images(data.images, repeats[0]) if data.images else []
    native = apply_to_pairs(data.pairs, repeats[0]) if data.pairs else []
    groups = {i: g for i, g, _ in items}
    bad = grouping_violations([(groups[i], s) for i, s in repeats[0].items()])
    if bad:  # cannot happen with the grouped rules; an official split may do it
        log.warning("%s: %d groups appear in two splits (official split)", spec.name, len(bad))

    margin = src.margin if src.margin is not None else spec.margin
    cap = resolve_cap(src, spec, len(images))
    pairs: list[HumanPair] = []
    if src.pairs:
        if spec.kind == "2afc":
            pairs = filter_native_pairs(
                native, dataset=spec.name, margin=margin, cap=cap, seed=manifest.seed
            )
        else:
            pair_group = {"fr": "ref", "aigc": "prompt"}.get(spec.kind)
            pairs = pairs_from_images(
                images,
                dataset=spec.name,
                group_by=pair_group,  # type: ignore[arg-type]
                margin=margin,
                cap=cap,
                seed=manifest.seed,
            )

    # images the task records point at: labels/<dataset>/src/<path as in the source>
    if src.images == "copy":
        used = [p for pr in pairs for p in (pr.A_path, pr.B_path, pr.ref_path) if p is not None]
        labels_cfg = manifest.tasks.labels  # the label tasks show every image
        if not src.pairs or labels_cfg.score or labels_cfg.aigc or labels_cfg.isp.per_image:
            used += [p for im in images for p in (im.path, im.ref_path) if p is not None]
        _copy_images(store, spec.name, root, used)
    else:
        _link_source(store, spec.name, root)
    prefix = f"labels/{spec.name}/src/"

    split_names = sorted({s for rep in repeats for s in rep.values()})
    splits_doc = {
        "dataset": spec.name,
        "rule": rule,
        "group_by": group_by,
        "seed": manifest.seed,
        "test_fraction": src.test_fraction if rule not in ("train", "test") else None,
        "unit": "pair" if spec.kind == "2afc" else "image",
        "repeats": [
            {s: sorted(i for i, v in rep.items() if v == s) for s in split_names} for rep in repeats
        ],
    }
    failures = data.failures
    _write_if_changed(out_dir / "images.jsonl", _jsonl_bytes(images))
    _write_if_changed(out_dir / "pairs.jsonl", _jsonl_bytes(pairs))
    _write_if_changed(out_dir / "splits.json", _json_bytes(splits_doc))
    _write_if_changed(out_dir / "failures.jsonl", _jsonl_bytes(failures))

    pair_dir = store.root / "pairs" / spec.name
    by_split: dict[str, list[HumanPair]] = {}
    for p in pairs:
        by_split.setdefault(p.split, []).append(p)
    for split, rows in sorted(by_split.items()):
        _write_if_changed(
            pair_dir / f"{split}.jsonl",
            _jsonl_bytes(comparison_pairs(rows, prefix=prefix, seed=manifest.seed)),
        )
    if pair_dir.is_dir():  # a split that no longer has pairs must not feed old ones to assemble
        for stale in pair_dir.glob("*.jsonl"):
            if stale.stem not in by_split:
                stale.unlink()

    summary = {
        "dataset": spec.name,
        "title": spec.title,
        "root": str(root),
        "kind": spec.kind,
        "images": len(images),
        "images_per_split": dict(sorted(Counter(im.split for im in images).items())),
        "native_pairs": len(native),
        "pairs": dict(sorted(Counter(p.split for p in pairs).items())),
        "refAB_pairs": sum(p.ref_path is not None for p in pairs),
        "A_better_B": sum(p.A_better_B for p in pairs),
        "margin": margin,
        "max_pairs": cap,
        "split_rule": rule,
        "repeats": len(repeats),
        "label": images[0].label if images else ("judge" if spec.kind == "2afc" else None),
        "rule": images[0].rule if images else spec.rule,
        "failures": dict(sorted(Counter(f.error_type for f in failures).items())),
        "notes": data.notes,
        "images_mode": src.images,
    }
    _write_if_changed(out_dir / "summary.json", _json_bytes(summary))
    return summary, failures


def _remove_pairs(store: Store, dataset: str) -> None:
    for stale in sorted((store.root / "pairs" / dataset).glob("*.jsonl")):
        stale.unlink()


def build_labels(
    manifest: Manifest,
    store: Store,
    *,
    datasets: list[str] | None = None,
    on_source: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the labels stage for the manifest's `sources` (or only `datasets`).

    Args:
        manifest: build manifest with a `sources` list.
        store: the dataset folder.
        datasets: restrict to these adapter names (any spelling `get_adapter` accepts).
        on_source: called after each source with its name and summary (progress output).

    Returns:
        {"sources": {dataset: summary}, "failures": n}; a source that could not be read
        has an "error" entry in its summary and one failure record.
    """
    wanted = {get_adapter(d).name for d in datasets} if datasets else None
    sources = [s for s in manifest.sources if wanted is None or s.dataset in wanted]
    summaries: dict[str, Any] = {}
    source_failures: dict[str, list[FailureRecord]] = {}
    for src in sources:
        summary, failures = _build_one(manifest, store, src)
        summaries[src.dataset] = summary
        if "error" in summary:  # an unreadable source must not feed last run's pairs on
            _remove_pairs(store, src.dataset)
            source_failures[src.dataset] = failures
        if on_source is not None:
            on_source(src.dataset, summary)
        log.info("labels %s: %s", src.dataset, summary)
    # failures/labels.jsonl = every dataset's row failures + this run's source failures,
    # rewritten (not appended) so a re-run never duplicates them.
    all_failures: list[FailureRecord] = []
    for name in sorted(s.dataset for s in manifest.sources):  # a dropped source's stay out
        if name not in source_failures:
            all_failures.extend(read_jsonl(labels_dir(store, name) / "failures.jsonl",
                                           FailureRecord))
    for failures in source_failures.values():
        all_failures.extend(failures)
    if all_failures or store.failures_path("labels").exists():
        _write_if_changed(store.failures_path("labels"), _jsonl_bytes(all_failures))
    return {"sources": summaries, "failures": len(all_failures)}
