"""Dataset report (pipeline/report.py): card, stats, figures and contact sheet render."""

from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image

from pipeline.assemble import TASK_NAMES, assemble_tasks
from pipeline.records import FailureRecord
from pipeline.report import write_report
from tests.pipeline.task_fixtures import make_dataset


def test_report_renders(tmp_path) -> None:
    manifest, store = make_dataset(tmp_path)
    store.record_failure(FailureRecord(stage="respond", item_id="s9", error_type="http_429",
                                       message="rate limited", status=429, attempts=6))
    store.record_failure(FailureRecord(stage="ingest", item_id="bad.jpg",
                                       error_type="truncated", message="truncated file"))
    # The shape pipeline.respond.respond returns: per-split summaries and their totals.
    respond_summary = {
        "splits": [{"kind": "refA_sd", "split": "train", "rejected": {"mentions_reference": 3},
                    "cost_usd": 0.2},
                   {"kind": "refA_md", "split": "train", "rejected": {"refusal": 1},
                    "cost_usd": 0.3}],
        "totals": {"rejected": {"mentions_reference": 3, "refusal": 1}, "cost_usd": 0.5},
        "budget_reached": False}
    assemble_tasks(manifest, store)
    result = write_report(manifest, store, respond_summary=respond_summary)

    card = (store.report_dir / "README.md").read_text()
    for task in TASK_NAMES:
        assert f"| {task} |" in card
    assert "| overly high brightness |" in card  # category table
    assert "### Severities" in card and "| 0 |" in card
    assert "| ingest | truncated | 1 |" in card
    assert "| respond | http_429 | 1 |" in card
    # run history (the build's respond summary) is no part of the card: logs/ keeps it
    assert "respond (validation)" not in card and "mentions_reference | 3" not in card
    assert "mentions_reference:A_detail_sd | 1 |" in card
    assert "no_response:refA_sd | 1 |" in card
    assert "$0.0270" in card  # 27 accepted responses x $0.001
    assert "Words per response" in card
    for ref in ("figures/categories.png", "figures/severities.png",
                "figures/response_length.png", "contact_sheet.png"):
        assert f"({ref})" in card
        with Image.open(store.report_dir / ref) as im:
            assert im.format == "PNG" and im.width > 300 and im.height > 200
            arr = np.asarray(im.convert("L"))
            assert arr.std() > 5  # something was drawn

    stats = json.loads((store.report_dir / "stats.json").read_text())
    assert stats["tasks"]["AB_brief"] == {"train": 5, "test": 5}
    assert stats["samples"]["refA_sd"] == {"train": 6, "test": 6}
    assert stats["rejections"] == {"http_429": 1}  # what failures/respond.jsonl keeps
    assert "respond_run_cost_usd" not in stats and "respond_runs_total" not in stats
    assert not (store.report_dir / "respond_summary.json").exists()
    history = json.loads((store.logs_dir / "respond_summary.json").read_text())
    assert history["this_build"]["totals"]["cost_usd"] == 0.5
    # per task file: each image of each record counts once per distortion it carries (once
    # as "clean" / severity 0 when it has none): sd images carry one, md images two
    assert "Categories and severities per task file" in card
    per_record = {"sd": 1, "md": 2}
    for task, per_split in stats["task_categories"].items():
        images = 2 if task.startswith(("refAB", "AB")) else 1
        for split, cats in per_split.items():
            assert sum(stats["task_severities"][task][split].values()) == sum(cats.values())
            if task.endswith(("_sd", "_md")):
                n = stats["tasks"][task][split]
                assert sum(cats.values()) == images * per_record[task[-2:]] * n, (task, split)
    assert len(stats["contact_sheet_samples"]) == 12
    assert result["stats"]["contact_sheet_samples"] == stats["contact_sheet_samples"]

    # Seeded and idempotent: same samples and same card on a re-run (the respond summary
    # of the build was kept in report/).
    again = write_report(manifest, store)
    assert again["stats"]["contact_sheet_samples"] == stats["contact_sheet_samples"]
    assert (store.report_dir / "README.md").read_text() == card


def test_report_without_manifest_or_responses(tmp_path) -> None:
    manifest, store = make_dataset(tmp_path)
    shutil.rmtree(store.root / "responses")
    assemble_tasks(manifest, store)
    write_report(None, store)
    card = (store.report_dir / "README.md").read_text()
    assert card.startswith(f"# Dataset card: {tmp_path.name}")
    assert "| A_brief_sd |" in card
    assert (store.report_dir / "contact_sheet.png").is_file()


def test_cli_assemble_and_report(tmp_path) -> None:
    import yaml
    from typer.testing import CliRunner

    from pipeline.cli import app

    manifest, store = make_dataset(tmp_path / "ds")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "seed": manifest.seed,
                                    "counts": manifest.counts}))
    runner = CliRunner()
    result = runner.invoke(app, ["assemble", str(path), "--out", str(store.root),
                                 "--export", "llava"])
    assert result.exit_code == 0, result.output
    assert "A_detail_sd" in result.output and "mentions_reference" in result.output
    assert (store.root / "exports" / "llava" / "A_brief_md" / "test.json").is_file()
    result = runner.invoke(app, ["report", str(store.root), "--manifest", str(path)])
    assert result.exit_code == 0, result.output
    assert (store.report_dir / "README.md").read_text().startswith("# Dataset card: tiny")
    empty = runner.invoke(app, ["assemble", str(path), "--out", str(tmp_path / "empty")])
    assert empty.exit_code == 2 and "dqgen build" in empty.output


def test_report_lists_human_pairs(tmp_path) -> None:
    from pipeline.assemble import ComparisonPair, pairs_path
    from pipeline.store import atomic_write_jsonl

    manifest, store = make_dataset(tmp_path)
    atomic_write_jsonl(pairs_path(store, "kadid10k", "train"), [
        ComparisonPair(pair_id="kadid-1", split="train", image_ref="references/ref0.png",
                       image_A="references/ref1.png", image_B="references/ref2.png",
                       A_better_B=True, provenance="human", judge="human:kadid10k")])
    # pairs join the tasks only from the manifest's sources or tasks.pair_sources
    manifest = manifest.model_copy(update={"tasks": manifest.tasks.model_copy(
        update={"contact_sheet_samples": 3, "pair_sources": ["kadid10k"]})})
    assemble_tasks(manifest, store)
    result = write_report(manifest, store)
    card = (store.report_dir / "README.md").read_text()
    assert "| kadid10k | train | 1 |" in card
    assert result["stats"]["tasks"]["refAB_brief"]["train"] == 6  # 5 synthetic + 1 human
    assert len(result["stats"]["contact_sheet_samples"]) == 3
    # the human pair carries no distortion metadata: counted as "human", not as clean
    assert result["stats"]["task_categories"]["refAB_brief"]["train"]["human"] == 1
    assert result["stats"]["task_severities"]["AB_brief"]["train"]["human"] == 1


def test_report_counts_per_responder_key(tmp_path) -> None:
    """Two responders' answers in one dataset: counts, words and cost are per key."""
    from pipeline.records import ResponseRecord
    from pipeline.store import atomic_write_jsonl, read_jsonl

    manifest, store = make_dataset(tmp_path)
    root = store.root / "responses"
    (key,) = [p.name for p in root.iterdir() if p.is_dir()]
    other = "openai--local-model"
    first = sorted((root / key).glob("*/*.jsonl"))[0]
    rows = [r.model_copy(update={"responder": "openai", "model": "local-model",
                                 "cost_usd": 0.5, "text": "One two three."})
            for r in read_jsonl(first, ResponseRecord)][:2]
    atomic_write_jsonl(root / other / first.parent.name / first.name, rows)
    assemble_tasks(manifest, store)
    write_report(manifest, store)
    stats = json.loads((store.report_dir / "stats.json").read_text())
    kind = first.parent.name
    assert set(stats["responses"]) == {key, other}
    assert stats["responses"][other] == {kind: {first.stem: 2}}
    assert stats["response_words"][other] == {kind: {
        "n": 2, "min": 3, "median": 3.0, "mean": 3.0, "p90": 3.0, "max": 3}}
    mine = sum(n for per_split in stats["responses"][key].values() for n in per_split.values())
    assert sum(v["n"] for v in stats["response_words"][key].values()) == mine
    assert stats["usage"][other]["cost_usd"] == 1.0
    assert stats["usage"][key]["cost_usd"] == round(0.001 * mine, 6)
    card = (store.report_dir / "README.md").read_text()
    assert f"accepted responses of `{other}`" in card and f"| {other} | {kind} | 2 |" in card


def test_contact_sheet_names_an_unreadable_image_and_goes_on(tmp_path) -> None:
    """A sample whose image cannot be read gets a frame naming the file; the other cells
    and the card are written as usual."""
    manifest, store = make_dataset(tmp_path)
    assemble_tasks(manifest, store)
    first = write_report(manifest, store)["stats"]["contact_sheet_samples"]
    sheet = store.report_dir / "contact_sheet.png"
    with Image.open(sheet) as im:
        good = np.asarray(im.convert("L"))
    rows = [json.loads(line) for p in sorted((store.root / "samples").rglob("*.jsonl"))
            for line in p.read_text().splitlines()]
    broken = next(r for r in rows if r["sample_id"] == first[0])
    (store.root / broken["image_A"]["path"]).write_bytes(b"not a png")
    again = write_report(manifest, store)
    assert again["stats"]["contact_sheet_samples"] == first
    with Image.open(sheet) as im:
        bad = np.asarray(im.convert("L"))
    assert bad.shape == good.shape  # same cells, same sizes
    # the first cell (top left) lost its pictures, the last one kept them
    h, w = bad.shape[0] // 4, bad.shape[1] // 3
    assert bad[:h, :w].std() < good[:h, :w].std()
    assert np.array_equal(bad[-h:, -w:], good[-h:, -w:])
    assert (store.report_dir / "README.md").is_file()


def test_contact_sheet_strip_fits_an_image_of_another_shape(tmp_path) -> None:
    """A (here edited to a portrait image) is fitted into its slot, not stretched: the
    strip keeps the ref's slot height and A's slot has white margins beside it."""
    from pipeline.records import SampleRecord
    from pipeline.report import _strip

    _, store = make_dataset(tmp_path)
    row = json.loads(next((store.root / "samples").rglob("*.jsonl")).read_text().splitlines()[0])
    sample = SampleRecord.model_validate(row)
    with Image.open(store.abs(sample.image_ref)) as ref:
        ref_w, ref_h = ref.size
    Image.new("RGB", (ref_h // 2, ref_h), (200, 0, 0)).save(store.abs(sample.image_A.path))
    strip = np.asarray(_strip(store, sample, 400))
    tile_w = (400 - 2 * 4) // 3
    assert strip.shape[0] == round(tile_w * ref_h / ref_w)
    slot = strip[:, tile_w + 4: 2 * tile_w + 4]
    red = (slot[..., 0] == 200) & (slot[..., 1] == 0)
    cols = np.flatnonzero(red.any(axis=0))
    assert red[:, cols].all()  # full height, no stretching into the margins
    assert cols[0] > 0 and cols[-1] < tile_w - 1 and (slot[:, : cols[0]] == 255).all()
