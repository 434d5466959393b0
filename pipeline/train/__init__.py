"""The training side of dqgen: torch datasets over task files and the learnability probe.

Imports only torch, numpy, Pillow and the standard library (nothing else of the pipeline),
so the package runs on a GPU machine that has nothing but a copy of the dataset folder::

    from pipeline.train import TaskImageDataset, PairDataset, make_loader
    ds = PairDataset("out/demo", "refAB_brief", "train", crop=96, augment=True, seed=0)
    loader = make_loader(ds, batch_size=128, device="cuda", shuffle=True, seed=0, workers=4)
    for epoch in range(3):
        loader.sampler.set_epoch(epoch)   # new crops/flips and order, same for any workers
        for batch in loader: ...

    from pipeline.train.probe import ProbeConfig, run_probe
    metrics = run_probe("out/demo", ProbeConfig(epochs=4, device="auto"))
"""

from pipeline.train.data import (
    CATEGORIES,
    EpochSampler,
    PairDataset,
    TaskImageDataset,
    collate,
    crop_params,
    make_loader,
    read_task,
    sample_rng,
)

__all__ = ["CATEGORIES", "EpochSampler", "PairDataset", "TaskImageDataset", "collate",
           "crop_params", "make_loader", "read_task", "sample_rng"]
