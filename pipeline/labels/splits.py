"""Seeded splits of a human-labelled dataset, grouped so no group straddles two splits.

Rules (`LabelSourceConfig.split`):

- `official`: the dataset's own split (KonIQ-10k `set`, BAPPS train/val). Items without one
  are split like `random`.
- `reference`: groups are references (full-reference datasets); a fraction `test_fraction`
  of the references, drawn with the seed, go to `test` with all their images.
- `prompt`: groups are text prompts (AI-generated datasets); `repeats` independent random
  80/20 splits (IP-IQA's protocol on AGIQA-3k: 10 splits grouped by prompt). Records and
  pairs use repeat 0; all repeats are written to `labels/<dataset>/splits.json`.
- `random`: every image is its own group (in-the-wild datasets without an official split).
- `train` / `test`: everything in one split (the published instant-rating files put all of
  BAPPS/PIPAL/KADID-10k in training and use TID2013 for testing).

The test fraction counts groups, not images. Each repeat draws from
`rng_for(derive_seed(seed, "labels_split", dataset, "", repeat), "split")`, so a split is
reproducible from the manifest seed alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

from pipeline.labels.records import HumanPair, LabelledImage
from pipeline.seeds import derive_seed, rng_for

__all__ = [
    "GroupBy",
    "SPLIT_RULES",
    "Item",
    "apply_to_images",
    "apply_to_pairs",
    "assign_splits",
    "group_by_for",
    "grouping_violations",
]

SPLIT_RULES: tuple[str, ...] = ("official", "reference", "prompt", "random", "train", "test")
GroupBy = Literal["ref", "prompt", "image"]
Item = tuple[str, str, "str | None"]  # (item id, group key, official split or None)


def group_by_for(rule: str, kind: str) -> GroupBy:
    """The grouping key of `rule` for a dataset of `kind` (`fr`, `nr`, `aigc`, `2afc`)."""
    if rule == "reference":
        return "ref"
    if rule == "prompt":
        return "prompt"
    if rule == "random":
        return "image"
    # official / train / test: group as the dataset's pairs are grouped
    return {"fr": "ref", "2afc": "ref", "aigc": "prompt"}.get(kind, "image")


def _random_split(
    groups: Sequence[str], *, seed: int, dataset: str, repeat: int, test_fraction: float
) -> dict[str, str]:
    uniq = sorted(set(groups))
    n = len(uniq)
    n_test = round(test_fraction * n)
    if n >= 2 and 0.0 < test_fraction < 1.0:
        n_test = min(max(n_test, 1), n - 1)  # both splits non-empty when possible
    rng = rng_for(derive_seed(seed, "labels_split", dataset, "", repeat), "split")
    order = rng.permutation(n)
    test = {uniq[i] for i in order[:n_test]}
    return {g: ("test" if g in test else "train") for g in uniq}


def assign_splits(
    items: Sequence[Item],
    rule: str,
    *,
    seed: int,
    dataset: str,
    test_fraction: float = 0.2,
    repeats: int = 1,
) -> list[dict[str, str]]:
    """Split of every item, one mapping `item id -> split` per repeat.

    Args:
        items: `(item id, group key, official split or None)` triples.
        rule: one of `SPLIT_RULES`.
        seed: the manifest seed.
        dataset: adapter name (part of the seed).
        test_fraction: fraction of groups in `test` for the random rules.
        repeats: number of independent splits (`prompt` rule; others give one).

    Raises:
        ValueError: unknown rule, bad fraction or repeats.
    """
    if rule not in SPLIT_RULES:
        msg = f"unknown split rule {rule!r}; known: {', '.join(SPLIT_RULES)}"
        raise ValueError(msg)
    if not 0.0 <= test_fraction <= 1.0:
        msg = f"test_fraction must be in [0, 1], got {test_fraction}"
        raise ValueError(msg)
    if repeats < 1:
        msg = f"repeats must be >= 1, got {repeats}"
        raise ValueError(msg)
    if rule in ("train", "test"):
        return [{item_id: rule for item_id, _, _ in items}]
    n_rep = repeats if rule == "prompt" else 1
    out: list[dict[str, str]] = []
    for r in range(n_rep):
        if rule == "official":
            rest = [g for _, g, off in items if off is None]
            by_group = (
                _random_split(
                    rest, seed=seed, dataset=dataset, repeat=r, test_fraction=test_fraction
                )
                if rest
                else {}
            )
            out.append({i: (off if off is not None else by_group[g]) for i, g, off in items})
        else:
            by_group = _random_split(
                [g for _, g, _ in items],
                seed=seed,
                dataset=dataset,
                repeat=r,
                test_fraction=test_fraction,
            )
            out.append({i: by_group[g] for i, g, _ in items})
    return out


def apply_to_images(
    images: Sequence[LabelledImage], split_of: dict[str, str]
) -> list[LabelledImage]:
    """Copies of `images` with `split` set from `split_of` (keyed by image id)."""
    return [im.model_copy(update={"split": split_of[im.image_id]}) for im in images]


def apply_to_pairs(pairs: Sequence[HumanPair], split_of: dict[str, str]) -> list[HumanPair]:
    """Copies of native pairs with `split` set from `split_of` (keyed by pair id)."""
    return [p.model_copy(update={"split": split_of[p.pair_id]}) for p in pairs]


def grouping_violations(assigned: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """Groups found in more than one split: `{group: [splits]}` from `(group, split)` pairs."""
    seen: dict[str, set[str]] = defaultdict(set)
    for group, split in assigned:
        seen[group].add(split)
    return {g: sorted(s) for g, s in seen.items() if len(s) > 1}
