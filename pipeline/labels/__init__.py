"""Human-labelled IQA datasets: adapters that read the label files as published, the
instant-rating pairs built from human scores, and seeded splits.

Importing this package registers every adapter (one module per dataset). Use
`get_adapter(name).read(root)` to read a dataset; `pipeline.labels.build` is the stage that
writes records, pairs, splits and task files into a dataset folder.
"""

from __future__ import annotations

# Dataset modules (importing registers their adapter).
from pipeline.labels import (  # noqa: E402,F401
    agiqa1k,
    agiqa3k,
    aigciqa2023,
    bapps,
    kadid10k,
    koniq10k,
    livec,
    pipal,
    spaq,
    tid2013,
)
from pipeline.labels.records import HumanPair, LabelledImage, Scale, normalise
from pipeline.labels.registry import (
    ADAPTERS,
    AdapterSpec,
    LabelSet,
    UnknownDatasetError,
    adapter_names,
    get_adapter,
    register_adapter,
)

__all__ = [
    "ADAPTERS",
    "AdapterSpec",
    "HumanPair",
    "LabelSet",
    "LabelledImage",
    "Scale",
    "UnknownDatasetError",
    "adapter_names",
    "get_adapter",
    "normalise",
    "register_adapter",
]
