"""MOS-grounded descriptions: an optional respond pass over the images of human-labelled
(MOS) sources, on the same core as the synthetic respond stage (docs/label-tasks.md).

The responder sees one image and its human score (normalised to [0, 1], two decimals, and
its level word; for AI-generated images also the prompt and the alignment score) and
writes a short quality description consistent with it, instruction
`prompts/instructions/mos_describe.<version>.yaml`. An answer is accepted by
`pipeline.validate.validate_mos_answer`: the rules of the detail answers for one clean
image, plus `level_mismatch` when its level word is not the score's bin. Everything else is
the synthetic stage's `_Run`: request-hash cache, budget, rate limits, the one retry
policy, re-asks, `failures/respond.jsonl`, resume, the run log.

Items are the images of `labels/<dataset>/images.jsonl` (split of repeat 0), kind
`mos/<dataset>`; answers go to `responses/<key>/mos/<dataset>/<split>.jsonl`
(ResponseRecord, sample id `<dataset>:<image id>`), which the label tasks turn into
`A_describe` records. The pass runs when `tasks.labels.describe` is true (the build's
`respond_labels` stage).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.labels import get_adapter
from pipeline.labels.records import LabelledImage, normalise
from pipeline.manifest import Manifest, ResponderConfig
from pipeline.responders.base import ResponseRequest
from pipeline.responders.prompting import Instruction, _image, load_instruction, reask_text
from pipeline.seeds import derive_seed
from pipeline.store import Store, read_jsonl
from pipeline.validate import Validation, validate_mos_answer
from prompts import render

__all__ = ["MOS_INSTRUCTION", "MosItem", "MosSource", "mos_items", "respond_mos",
           "stage_respond_mos"]

MOS_INSTRUCTION = "mos_describe"


@dataclass(frozen=True)
class MosItem:
    """One image of a MOS source to describe (what `ResponseRequest.sample` holds for it)."""

    sample_id: str
    kind: str  # "mos/<dataset>"
    split: str
    seed: int
    dataset: str
    image_id: str
    path: str  # relative to the dataset root folder (labels/<dataset>/src/...)
    score: float
    level: str
    prompt: str | None = None
    align_score: float | None = None
    align_level: str | None = None
    image_ref: None = None
    image_B: None = None
    judge: None = None


def _item(manifest: Manifest, im: LabelledImage) -> MosItem:
    from pipeline.label_tasks import AIGC_TARGETS, level_word

    align = next((t for t in AIGC_TARGETS.get(im.dataset, ()) if t.name == "align"), None)
    align_score = None
    if align is not None and align.label in im.labels:
        try:
            align_score = normalise(im.labels[align.label], im.scale)
        except ValueError:
            align_score = None
    return MosItem(
        sample_id=f"{im.dataset}:{im.image_id}", kind=f"mos/{im.dataset}",
        split=im.split or "train",
        seed=derive_seed(manifest.seed, "label_task", im.dataset, im.image_id, 0),
        dataset=im.dataset, image_id=im.image_id, path=f"labels/{im.dataset}/src/{im.path}",
        score=im.score, level=level_word(im.score), prompt=im.prompt, align_score=align_score,
        align_level=level_word(align_score) if align_score is not None else None)


def mos_items(manifest: Manifest, store: Store, dataset: str, split: str) -> list[MosItem]:
    """The images of one MOS source and split, in the order of images.jsonl."""
    path = store.root / "labels" / dataset / "images.jsonl"
    return [_item(manifest, im) for im in read_jsonl(path, LabelledImage)
            if (im.split or "train") == split]


class MosSource:
    """The respond core's item source for MOS images (see `pipeline.respond.online`)."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.prompt_max_chars = manifest.tasks.labels.prompt_max_chars

    def version(self, config: ResponderConfig) -> str:
        del config
        return self.manifest.tasks.labels.describe_version

    def items(self, store: Store, kind: str, split: str) -> list[MosItem]:
        return mos_items(self.manifest, store, kind.split("/", 1)[1], split)

    def out_path(self, store: Store, key: str, kind: str, split: str) -> Path:
        return store.responses_path(key, kind, split)

    def instruction(self, kind: str, version: str) -> Instruction:
        del kind
        return load_instruction(MOS_INSTRUCTION, version)

    def request(self, item: MosItem, store: Store, instruction: Instruction, *, reask: int,
                reasons: tuple[str, ...], extra: dict[str, Any],
                image_detail: str) -> ResponseRequest:
        from pipeline.label_tasks import quote_prompt

        prompt = quote_prompt(item.prompt, self.prompt_max_chars) if item.prompt else None
        user = render(instruction.user, score=f"{item.score:.2f}", level=item.level,
                      prompt=prompt, align_level=item.align_level,
                      align_score=f"{item.align_score:.2f}" if item.align_score is not None
                      else None, word_limit=instruction.word_limit)
        return ResponseRequest(
            sample=item,  # type: ignore[arg-type]  # duck-typed: sample_id, kind, split, seed
            prompt_id=instruction.id, prompt_version=instruction.version,
            system=render(instruction.system), user=user,
            images=(_image(store, "A", item.path, item.sample_id),),
            max_tokens=instruction.max_tokens, temperature=instruction.temperature,
            word_limit=instruction.word_limit, reask=reask,
            reask_text=reask_text(instruction, reasons) if reask else "",
            extra=dict(extra), image_detail=image_detail)

    def validate(self, item: MosItem, request: ResponseRequest, text: str,
                 tolerance: float) -> Validation:
        return validate_mos_answer(text, level=item.level, word_limit=request.word_limit,
                                   tolerance=tolerance)


def _targets(manifest: Manifest, store: Store, datasets: list[str] | None,
             splits: list[str] | None) -> list[tuple[str, str, None]]:
    out = []
    for src in manifest.sources:
        spec = get_adapter(src.dataset)
        path = store.root / "labels" / spec.name / "images.jsonl"
        if spec.kind == "2afc" or not path.is_file():
            continue
        if datasets is not None and spec.name not in datasets:
            continue
        present = sorted({im.split or "train" for im in read_jsonl(path, LabelledImage)})
        out += [(f"mos/{spec.name}", s, None) for s in present if splits is None or s in splits]
    return out


def respond_mos(manifest: Manifest, store: Store, *, datasets: list[str] | None = None,
                splits: list[str] | None = None, responder: Any = None,
                config: ResponderConfig | None = None, progress: Any = None,
                origin: str = "respond_mos") -> dict[str, Any]:
    """Describe every image of the manifest's MOS sources that has no accepted answer yet.

    Same contract as `pipeline.respond.respond` (one responder, one budget, cache, resume,
    failures, one run-log line): see the module docstring.

    Returns:
        {"splits": [summary per source and split], "totals": summed counts,
        "budget_reached": bool}
    """
    from pipeline.respond.run import _arun, _combine, _resolve, _run_sync

    config, responder = _resolve(manifest, config, responder)
    targets = _targets(manifest, store, datasets, splits)
    results = _run_sync(_arun(store, responder, config, targets, retry_failed=False,
                              progress=progress, budget=None, origin=origin,
                              source=MosSource(manifest)))
    return _combine([r.summary for r in results])


def stage_respond_mos(ctx: Any) -> dict[str, Any]:
    """The build's `respond_labels` stage: MOS-grounded descriptions when
    `tasks.labels.describe` is on (else nothing)."""
    if not ctx.manifest.tasks.labels.describe or not ctx.manifest.sources:
        return {}
    result = respond_mos(ctx.manifest, ctx.store, origin="build")
    out: dict[str, Any] = {
        f"{s['kind']}/{s['split']}": {"done": s["accepted"], "failed": s["failed"],
                                      "skipped": s["already_done"] + s["skipped_open_failures"]}
        for s in result["splits"]}
    if result["budget_reached"]:
        ctx.progress.message("respond_labels: the budget (max_cost_usd) was reached; "
                             "re-run to continue")
    return out
