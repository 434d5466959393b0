"""The adapter registry: one `AdapterSpec` per human-labelled dataset, keyed by name.

Dataset modules register their reader with `@register_adapter("kadid10k", ...)`; importing a
module registers it and does nothing else. `get_adapter(name)` accepts the registered name
in any case and with or without `-`/`_` (`KADID-10k`, `kadid_10k`), plus a few aliases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipeline.labels.records import HumanPair, LabelledImage
from pipeline.records import FailureRecord

__all__ = [
    "ADAPTERS",
    "AdapterSpec",
    "Kind",
    "LabelSet",
    "ReadFn",
    "SplitRule",
    "UnknownDatasetError",
    "adapter_names",
    "get_adapter",
    "register_adapter",
]

Kind = Literal["2afc", "fr", "nr", "aigc"]
SplitRule = Literal["official", "reference", "prompt", "random"]


@dataclass
class LabelSet:
    """What an adapter read from a dataset root: images, native pairs, failures, notes."""

    images: list[LabelledImage] = field(default_factory=list)
    pairs: list[HumanPair] = field(default_factory=list)  # BAPPS: pairs as published
    failures: list[FailureRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. rows left out by rule (LIVEC 1..7)


ReadFn = Callable[[Path], LabelSet]


class UnknownDatasetError(KeyError):
    """A dataset name that no adapter is registered under."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class AdapterSpec:
    """One registered dataset adapter.

    Attributes:
        name: registry key, written into every record (`dataset`).
        title: the dataset's usual name (`KADID-10k`).
        kind: `2afc` (published pairs), `fr` (images of references), `nr` (in-the-wild MOS),
            `aigc` (AI-generated images with prompts).
        read: `read(root) -> LabelSet`.
        layout: the folder layout it expects under the root (README table).
        rule: the normalisation rule, in words.
        split: default split rule.
        margin: default margin on the normalised score for pairs (see `pipeline.labels.pairs`).
        max_pairs: default cap on pairs over all splits: a number, "images" (as many pairs as
            images), or "all".
        published_pairs: pairs of the published DQ-495K rating file, when it used the dataset.
    """

    name: str
    title: str
    kind: Kind
    read: ReadFn
    layout: str
    rule: str
    split: SplitRule
    margin: float = 0.1
    max_pairs: int | Literal["images", "all"] = "images"
    published_pairs: int | None = None


ADAPTERS: dict[str, AdapterSpec] = {}
_ALIASES: dict[str, str] = {"clive": "livec", "livechallenge": "livec", "livewild": "livec"}


def _key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "").replace(" ", "")


def register_adapter(
    name: str,
    *,
    title: str,
    kind: Kind,
    layout: str,
    rule: str,
    split: SplitRule,
    margin: float = 0.1,
    max_pairs: int | Literal["images", "all"] = "images",
    published_pairs: int | None = None,
) -> Callable[[ReadFn], ReadFn]:
    """Decorator: register `read` as the adapter of dataset `name`."""
    if _key(name) != name:
        msg = f"adapter name must be lower case without '-' or '_', got {name!r}"
        raise ValueError(msg)

    def decorator(read: ReadFn) -> ReadFn:
        if name in ADAPTERS:
            msg = f"adapter {name!r} is already registered"
            raise ValueError(msg)
        ADAPTERS[name] = AdapterSpec(
            name=name,
            title=title,
            kind=kind,
            read=read,
            layout=layout,
            rule=rule,
            split=split,
            margin=margin,
            max_pairs=max_pairs,
            published_pairs=published_pairs,
        )
        return read

    return decorator


def adapter_names() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(ADAPTERS)


def get_adapter(name: str) -> AdapterSpec:
    """The adapter registered under `name` (case, '-' and '_' ignored).

    Raises:
        UnknownDatasetError: no such adapter; the message lists the known names.
    """
    if not isinstance(name, str):
        msg = f"dataset name must be a string, got {type(name).__name__}"
        raise TypeError(msg)
    key = _key(name)
    key = _ALIASES.get(key, key)
    if key not in ADAPTERS:
        msg = f"unknown dataset {name!r}; known: {', '.join(adapter_names())}"
        raise UnknownDatasetError(msg)
    return ADAPTERS[key]
