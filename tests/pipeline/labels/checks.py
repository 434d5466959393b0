"""Assertions shared by the adapter tests: records, failures, pairs, split grouping."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from pipeline.labels import HumanPair, LabelledImage, LabelSet, get_adapter
from pipeline.labels.pairs import pairs_from_images
from pipeline.labels.splits import apply_to_images, assign_splits

__all__ = ["assert_failures", "assert_images", "assert_pairs", "make_and_read", "split_and_pair"]


def make_and_read(
    tmp_path_factory, make: Callable[[Path], dict], name: str
) -> tuple[Path, dict, LabelSet]:
    """`(root, info, out)`: `make` (a `fixtures.make_<dataset>`) writes its official layout
    into a fresh folder named after the dataset, read through `get_adapter(name)` (`name`
    may be a spelling variant or alias, so the lookup is exercised too)."""
    root = tmp_path_factory.mktemp(make.__name__.removeprefix("make_"))
    info = make(root)
    return root, info, get_adapter(name).read(root)


def assert_images(
    root: Path, images: Sequence[LabelledImage], expected: dict[str, float], rule
) -> None:
    """Every expected image is there once, its file exists and its score follows `rule`."""
    got = {im.image_id: im for im in images}
    assert set(got) == set(expected), sorted(set(got) ^ set(expected))
    for name, native in expected.items():
        im = got[name]
        assert (root / im.path).is_file(), im.path
        if im.ref_path is not None:
            assert (root / im.ref_path).is_file(), im.ref_path
        assert im.labels[im.label] == native
        assert abs(im.score - rule(native)) < 1e-9, (name, im.score, rule(native))
        assert 0.0 <= im.score <= 1.0
        assert not Path(im.path).is_absolute()


def assert_failures(
    out: LabelSet, dataset: str, expected_types: Iterable[str], label_file: str | None = None
) -> None:
    """One failure per tricky row, of the expected types, naming dataset, file and row."""
    types = sorted(f.error_type for f in out.failures)
    assert types == sorted(expected_types), types
    for f in out.failures:
        assert f.stage == "labels"
        assert f.item_id.startswith(f"{dataset}:")
        assert f.path
        if label_file is not None:
            assert label_file in f.message and "row " in f.message, f.message


def split_and_pair(
    images: Sequence[LabelledImage],
    *,
    dataset: str,
    rule: str,
    group: str,
    pair_group: str | None,
    margin: float = 0.1,
    cap=None,
    seed: int = 0,
    test_fraction: float = 0.34,
) -> tuple[list[LabelledImage], list[HumanPair]]:
    """Assign splits with `rule` and build pairs, as the labels stage does."""
    items = [(im.image_id, im.group(group), im.split) for im in images]
    split_of = assign_splits(items, rule, seed=seed, dataset=dataset, test_fraction=test_fraction)[
        0
    ]
    assigned = apply_to_images(images, split_of)
    pairs = pairs_from_images(
        assigned,
        dataset=dataset,
        group_by=pair_group,  # type: ignore[arg-type]
        margin=margin,
        cap=cap,
        seed=seed,
    )
    return assigned, pairs


def assert_pairs(
    images: Sequence[LabelledImage], pairs: Sequence[HumanPair], *, margin: float, group: str | None
) -> None:
    """Pairs respect the margin, the grouping and the split; the verdict follows the scores;
    no group is in two splits; every eligible pair is present when uncapped."""
    by_id = {im.image_id: im for im in images}
    assert pairs, "expected some pairs"
    for p in pairs:
        a, b = by_id[p.A_id], by_id[p.B_id]
        assert a.split == b.split == p.split
        if group is not None:
            assert a.group(group) == b.group(group)
        assert abs(a.score - b.score) > margin
        assert p.difference == abs(a.score - b.score)
        assert p.A_better_B == (a.score > b.score)
        assert p.score_A == a.labels[a.label] and p.score_B == b.labels[b.label]
        assert p.label == f"human:{a.dataset}:{a.label}"
        assert p.margin == margin
    splits_of: dict[str, set[str]] = defaultdict(set)
    for im in images:
        splits_of[im.group(group) if group else im.image_id].add(im.split or "")
    assert all(len(s) == 1 for s in splits_of.values()), "a group is in two splits"
