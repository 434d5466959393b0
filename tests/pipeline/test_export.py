"""Exports (pipeline/export.py): every format validates, round-trips, and its images resolve."""

from __future__ import annotations

import json

import pytest

from pipeline.assemble import TASK_NAMES, assemble_tasks, read_task_file
from pipeline.export import (
    FORMATS,
    export_tasks,
    from_jsonl,
    from_llava,
    from_sharegpt,
    task_files,
)
from pipeline.schema import (
    IMAGE_TOKEN,
    LlavaRecord,
    ShareGPTRecord,
    validate_task_record,
)
from tests.pipeline.task_fixtures import make_dataset


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    manifest, store = make_dataset(tmp_path_factory.mktemp("ds"))
    assemble_tasks(manifest, store)
    return store


def _qa(rec):
    if "conversations" in rec:
        return rec["conversations"][0]["value"], rec["conversations"][1]["value"]
    return rec["query"], rec["answer"]


def _images(rec):
    return [rec[k] for k in ("image_ref", "image_A", "image_B") if rec[k] is not None]


def _sources(store):
    return {(t, s): read_task_file(p) for t, s, p in task_files(store)}


def test_depictqa_is_tasks_folder_or_a_copy(store, tmp_path) -> None:
    summary = export_tasks(store, "depictqa")
    assert summary["dest"] == str(store.root / "tasks")
    assert len(summary["files"]) == 2 * len(TASK_NAMES)
    copy = export_tasks(store, "depictqa", dest=tmp_path / "copy")
    for rel in copy["files"]:
        assert (tmp_path / "copy" / rel).read_bytes() == (store.root / "tasks" / rel).read_bytes()


def test_jsonl_round_trip(store) -> None:
    summary = export_tasks(store, "jsonl")
    out = store.root / "exports" / "jsonl"
    for (task, split), recs in _sources(store).items():
        lines = (out / task / f"{split}.jsonl").read_text().splitlines()
        back = [from_jsonl(json.loads(line)) for line in lines]
        assert back == recs
        for rec in back:
            validate_task_record(rec, split)
    assert summary["records"] == sum(len(v) for v in _sources(store).values())


def test_llava_onevision_round_trip_and_placeholders(store) -> None:
    export_tasks(store, "llava-onevision")
    out = store.root / "exports" / "llava_onevision"
    for (task, split), recs in _sources(store).items():
        back = read_task_file(out / task / f"{split}.json")
        assert len(back) == len(recs)
        for src, rec in zip(recs, back):
            model = LlavaRecord.model_validate(rec)
            human = rec["conversations"][0]["value"]
            assert human.count(IMAGE_TOKEN) == len(model.image) == len(_images(src))
            got = from_llava(rec)
            assert (got["question"], got["answer"]) == _qa(src)
            assert got["images"] == _images(src) and got["id"] == src["id"]
            for p in model.image:
                assert (store.root / p).is_file()


def test_sharegpt_round_trip_and_dataset_info(store) -> None:
    summary = export_tasks(store, "sharegpt")
    out = store.root / "exports" / "sharegpt"
    info = json.loads((out / "dataset_info.json").read_text())
    assert len(info) == len(summary["files"]) == 2 * len(TASK_NAMES)
    for name, entry in info.items():
        assert entry["formatting"] == "sharegpt"
        assert entry["columns"] == {"messages": "messages", "images": "images"}
        assert entry["tags"] == {"role_tag": "role", "content_tag": "content",
                                 "user_tag": "user", "assistant_tag": "assistant"}
        assert (out / entry["file_name"]).is_file()
        assert name == "dqgen_" + entry["file_name"].removesuffix(".json")
    for (task, split), recs in _sources(store).items():
        back = json.loads((out / f"{task}_{split}.json").read_text())
        assert len(back) == len(recs)
        for src, rec in zip(recs, back):
            model = ShareGPTRecord.model_validate(rec)
            user = rec["messages"][0]["content"]
            assert user.count(IMAGE_TOKEN) == len(model.images) == len(_images(src))
            got = from_sharegpt(rec)
            assert (got["question"], got["answer"]) == _qa(src)
            assert got["images"] == _images(src)
            assert all((store.root / p).is_file() for p in model.images)


def test_parquet_round_trip(store) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    export_tasks(store, "parquet")
    out = store.root / "exports" / "parquet"
    for (task, split), recs in _sources(store).items():
        rows = pq.read_table(out / task / f"{split}.parquet").to_pylist()
        assert len(rows) == len(recs)
        for src, row in zip(recs, rows):
            assert (row["question"], row["answer"]) == _qa(src)
            assert [row[k] for k in ("image_ref", "image_A", "image_B")] == [
                src["image_ref"], src["image_A"], src["image_B"]]
            prov = json.loads(row["provenance"])
            assert prov["sample_id"] == src["sample_id"]


def test_export_is_idempotent(store) -> None:
    export_tasks(store, "llava-onevision")
    path = store.root / "exports" / "llava_onevision" / "AB_brief" / "train.json"
    first = path.read_bytes()
    export_tasks(store, "llava-onevision")
    assert path.read_bytes() == first


def test_export_errors(store, tmp_path) -> None:
    assert "parquet" in FORMATS
    with pytest.raises(ValueError, match="unknown export format 'csv'"):
        export_tasks(store, "csv")
    from pipeline.store import Store
    with pytest.raises(ValueError, match="dqgen assemble"):
        export_tasks(Store(tmp_path), "jsonl")


def test_labelled_placeholders() -> None:
    from pipeline.export import to_llava_onevision, to_sharegpt

    base = {"id": "x", "task_type": "quality_compare", "image_ref": "r.png", "image_A": "a.png",
            "image_B": "b.png", "query": "Which is better?", "answer": "Image A"}
    human = to_llava_onevision(base)["conversations"][0]["value"]
    assert human == ("Reference image: <image>\nImage A: <image>\nImage B: <image>\n"
                     "Which is better?")
    single = {**base, "task_type": "quality_single_A_noref", "image_ref": None, "image_B": None}
    assert to_sharegpt(single)["messages"][0]["content"] == "<image>\nWhich is better?"
    assert from_sharegpt(to_sharegpt(single))["question"] == "Which is better?"


def test_cli_export(store, tmp_path) -> None:
    from typer.testing import CliRunner

    from pipeline.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["export", str(store.root), "--format", "jsonl,sharegpt",
                                 "--dest", str(tmp_path / "ex")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ex" / "sharegpt" / "dataset_info.json").is_file()
    assert (tmp_path / "ex" / "jsonl" / "AB_brief" / "train.jsonl").is_file()
    bad = runner.invoke(app, ["export", str(store.root), "--format", "csv"])
    assert bad.exit_code == 2 and "unknown export format" in bad.output
    missing = runner.invoke(app, ["export", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "not a dataset folder" in missing.output
