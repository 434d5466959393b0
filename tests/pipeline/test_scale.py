"""Full-scale behaviour on tiny builds: detail counts, streaming writers, the no-op re-run,
parallel respond with a local responder (docs/scale.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeline.assemble import iter_task_file
from pipeline.build import run_build
from pipeline.detail import detail_subset
from pipeline.manifest import Manifest
from pipeline.store import (
    JsonListWriter,
    Store,
    atomic_json_list,
    atomic_write_jsonl,
    dump_json_list,
    read_jsonl,
)
from tests.pipeline.build_fixtures import load, photo_dir, tree_digest, write_manifest

__all__ = ["photo_dir"]

DETAIL = {"refA_sd": {"train": 3}, "refAB_sd": {"train": 2, "test": 0}}


def _manifest(n: int | None) -> Manifest:
    detail = {"refA_sd": {"train": n}} if n is not None else None
    return Manifest(name="t", seed=7, counts={"refA_sd": {"train": 100}}, detail_counts=detail)


def test_a_larger_detail_count_extends_the_subset_never_reshuffles() -> None:
    ids = [f"refA_sd-train-r{i % 7}-{i // 7:03d}" for i in range(100)]
    small = detail_subset(_manifest(10), "refA_sd", "train", ids)
    large = detail_subset(_manifest(25), "refA_sd", "train", iter(ids))
    assert small is not None and large is not None
    assert len(small) == 10 and len(large) == 25 and small < large
    # a pure function of (seed, sample id): order and repetition of the listing do not matter
    assert detail_subset(_manifest(25), "refA_sd", "train", list(reversed(ids))) == large
    assert detail_subset(_manifest(None), "refA_sd", "train", ids) is None  # absent: all
    assert detail_subset(_manifest(0), "refA_sd", "train", ids) == set()
    assert detail_subset(_manifest(500), "refA_sd", "train", ids) == set(ids)  # capped
    other_seed = _manifest(25).model_copy(update={"seed": 8})
    assert detail_subset(other_seed, "refA_sd", "train", ids) != large


@pytest.mark.parametrize("records", [[], [{"id": "a"}], [{"id": "é", "x": [1, None]}, {"b": 2.5}]])
def test_streaming_writers_write_the_bytes_of_json_dumps(tmp_path: Path, records: list) -> None:
    path = tmp_path / "t.json"
    with atomic_json_list(path) as w:
        assert isinstance(w, JsonListWriter)
        for r in records:
            w.add(r)
    body = ",\n".join(json.dumps(r, ensure_ascii=False) for r in records)
    expected = ("[\n" + body + "\n]\n" if records else "[]\n").encode()
    assert path.read_bytes() == expected == dump_json_list(records)
    assert json.loads(path.read_text(encoding="utf-8")) == records
    assert list(iter_task_file(path)) == records  # the streaming reader
    # JSON Lines from a generator; rewriting the same rows keeps the file (and its mtime)
    jl = tmp_path / "r.jsonl"
    assert atomic_write_jsonl(jl, (r for r in records)) == len(records)
    assert jl.read_bytes() == "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                      for r in records).encode()
    os.utime(jl, ns=(1, 1))
    atomic_write_jsonl(jl, iter(records))
    assert jl.stat().st_mtime_ns == 1
    assert list(read_jsonl(jl)) == records


def _files(root: Path) -> dict[str, tuple[int, bytes]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] != "logs"}


@pytest.fixture(scope="module")
def detail_builds(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory
                  ) -> dict[int, Path]:
    """The same manifest with detail counts built with 1 and with 2 workers."""
    base = tmp_path_factory.mktemp("scale")
    out = {}
    for workers in (1, 2):
        mpath = write_manifest(base / f"w{workers}", photo_dir, detail_counts=DETAIL,
                               tasks={"report": True, "contact_sheet_samples": 2})
        run_build(load(mpath), workers=workers)
        out[workers] = base / f"w{workers}" / "out"
    return out


def test_detail_counts_ask_only_the_subset_same_for_any_worker_count(
        detail_builds: dict[int, Path]) -> None:
    one, two = detail_builds[1], detail_builds[2]
    skip = ("manifest.lock.json",)  # names the output folder, which differs
    assert tree_digest(one, skip=skip) == tree_digest(two, skip=skip)  # parallel respond: same bytes
    store = Store(one)
    answered = [r["sample_id"] for r in read_jsonl(store.responses_path("template", "refA_sd",
                                                                        "train"))]
    samples = [r["sample_id"] for r in read_jsonl(store.samples_path("refA_sd", "train"))]
    assert len(answered) == 3 and len(samples) == 8
    assert answered == [s for s in samples if s in set(answered)]  # sample order
    assert not store.responses_path("template", "refAB_sd", "test").exists() or not list(
        read_jsonl(store.responses_path("template", "refAB_sd", "test")))
    # kinds not listed get every sample answered
    assert len(list(read_jsonl(store.responses_path("template", "refA_md", "train")))) == 4
    tasks = json.loads(store.task_path("refA_detail_sd", "train").read_text())
    assert sorted(r["sample_id"] for r in tasks) == sorted(answered)
    brief = json.loads(store.task_path("refA_brief_sd", "train").read_text())
    assert len(brief) == 8  # brief tasks need no answer: every sample
    summary = json.loads((one / "tasks" / "summary.json").read_text())
    assert not any(k.startswith("no_response") for k in summary["skipped"])


def test_a_no_op_rerun_writes_nothing_outside_logs(detail_builds: dict[int, Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.respond.online import SampleSource

    root = detail_builds[2]
    before = _files(root)
    first = json.loads((root / "logs" / "resume" / "stamps.json").read_text())
    mpath = root.parent / "manifest.yaml"
    reads: list[tuple[str, str]] = []
    items = SampleSource.items

    def counted(self, store, kind, split):  # noqa: ANN001, ANN202
        reads.append((kind, split))
        return items(self, store, kind, split)

    monkeypatch.setattr(SampleSource, "items", counted)
    result = run_build(load(mpath), workers=1)
    assert _files(root) == before  # same names, bytes and mtimes
    assert result["synthesize"]["refA_sd/train"]["done"] == 0 and result["ingest"]["done"] == 0
    # the respond stage found every split finished from its stamps: no samples file read
    assert reads == []
    resp = result["respond"]["refA_sd/train"]
    assert (resp["done"], resp["skipped"]) == (0, first["respond:template:refA_sd/train"][
        "summary"]["accepted"])
    stamps = json.loads((root / "logs" / "resume" / "stamps.json").read_text())
    assert {"assemble", "report", "plan:refA_sd/train", "respond:template:refA_sd/train"
            } <= set(stamps)
    # a responses file deleted: that split only is answered again, with the same bytes
    gone = Store(root).responses_path("template", "refA_md", "train")
    gone.unlink()
    run_build(load(mpath), workers=2)
    assert reads == [("refA_md", "train"), ("refA_md", "train")]  # listed, then dealt
    assert gone.read_bytes() == before[gone.relative_to(root).as_posix()][1]
    monkeypatch.setattr(SampleSource, "items", items)
    # an input change redoes what depends on it, and only that
    tasks_file = root / "tasks" / "refA_detail_sd" / "train.json"
    data = load(mpath).model_copy(update={"detail_counts": {"refA_sd": {"train": 4}}})
    run_build(data, workers=1)
    after = _files(root)
    assert after["plans/refA_sd/train.jsonl"] == before["plans/refA_sd/train.jsonl"]
    assert len(json.loads(tasks_file.read_text())) == 4


def test_images_are_sharded_and_the_old_flat_layout_is_refused(
        detail_builds: dict[int, Path], tmp_path: Path) -> None:
    from pipeline.store import LayoutError, image_shard

    store = Store(detail_builds[1])
    for row in read_jsonl(store.samples_path("refAB_sd", "train")):
        for side in ("image_A", "image_B"):
            rel = row[side]["path"]
            if rel.startswith("images/"):  # clean images reuse the reference file
                assert rel == f"images/refAB_sd/train/{image_shard(row['sample_id'])}/" \
                              f"{row['sample_id']}_{side[-1]}.png"
                assert (store.root / rel).is_file()
    old = Store(tmp_path / "old")
    (old.image_dir("refA_sd", "train")).mkdir(parents=True)
    (old.image_dir("refA_sd", "train") / "refA_sd-train-x-000_A.png").write_bytes(b"png")
    with pytest.raises(LayoutError, match="old flat layout.*dqgen regenerate"):
        old.check_image_layout("refA_sd", "train")
    old.check_image_layout("refA_md", "train")  # no folder: nothing to refuse


def test_paid_respond_asks_only_the_subset_and_announces_the_cost_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.respond import respond
    from tests.support.fake_openai import FakeOpenAI
    from tests.support.respond_samples import fast_openai_config, make_samples

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    recs = make_samples(tmp_path, "refA_sd", "train", 6)
    store = Store(tmp_path)
    lines: list[tuple[str, int]] = []
    with FakeOpenAI() as srv:
        cfg = fast_openai_config(srv.base_url, "gpt-4o", concurrency=2)
        m = Manifest(name="t", seed=3, counts={"refA_sd": {"train": 6}},
                     detail_counts={"refA_sd": {"train": 2}}, responder=cfg)
        subset = detail_subset(m, "refA_sd", "train", [r.sample_id for r in recs])
        out = respond(m, store, config=cfg,
                      announce=lambda text: lines.append((text, srv.chat_calls)))
        assert srv.chat_calls == 2 and out["totals"]["accepted"] == 2
        answered = {r["sample_id"] for r in read_jsonl(
            store.responses_path("openai--gpt-4o", "refA_sd", "train"))}
        assert answered == subset
        assert len(lines) == 1 and lines[0][1] == 0  # printed before the first call
        text = lines[0][0]
        assert text.startswith("respond: 2 calls expected to gpt-4o") and "$" in text
        # nothing left to ask: no line, no call
        lines.clear()
        respond(m, store, config=cfg, announce=lambda text: lines.append((text, 0)))
        assert not lines and srv.chat_calls == 2


def test_finalize_orders_streams_and_keeps_the_lines(tmp_path: Path) -> None:
    from pipeline.respond.files import finalize
    from pipeline.respond.locks import repair

    path = tmp_path / "r.jsonl"
    lines = [json.dumps({"sample_id": sid, "text": f"t{i}"}) + "\n"
             for i, sid in enumerate(["c", "a", "b", "a"])]
    path.write_text("".join(lines) + '{"sample_id": "d", "te', encoding="utf-8")  # torn
    repair(path)
    assert path.read_text(encoding="utf-8") == "".join(lines)  # complete lines kept as is
    finalize(path, ["a", "b", "c"])
    assert path.read_text(encoding="utf-8") == lines[1] + lines[2] + lines[0]  # first "a"
    mtime = path.stat().st_mtime_ns
    finalize(path, ["a", "b", "c"])  # already in order: not rewritten
    assert path.stat().st_mtime_ns == mtime


def test_lock_streams_the_bytes_of_json_dumps_and_the_ledger_is_sqlite(
        detail_builds: dict[int, Path]) -> None:
    import sqlite3

    from pipeline.build import write_lock
    from pipeline.resume import HashLedger

    root = detail_builds[1]
    text = (root / "manifest.lock.json").read_text(encoding="utf-8")
    lock = json.loads(text)
    assert text == json.dumps(lock, ensure_ascii=False, indent=1) + "\n"
    assert list(lock["outputs"]) == sorted(lock["outputs"]) and len(lock["outputs"]) > 20
    db = root / "logs" / "resume" / "hashes.sqlite"
    rows = dict(sqlite3.connect(db).execute("SELECT rel, sha FROM files").fetchall())
    assert rows == lock["outputs"]  # one row per output file, nothing else
    # a ledger of an older dqgen (hashes.json) is read once and replaced
    old = db.with_name("hashes.json")
    old.write_text(json.dumps({r: [0, 0, "x"] for r in rows}), encoding="utf-8")
    db.unlink()
    (root / "tasks" / "summary.json").rename(root / "summary.moved")
    write_lock(load(root.parent / "manifest.yaml"), root)
    after = json.loads((root / "manifest.lock.json").read_text(encoding="utf-8"))
    assert not old.exists() and "tasks/summary.json" not in after["outputs"]
    assert after["outputs"]["summary.moved"] == lock["outputs"]["tasks/summary.json"]
    fresh = HashLedger(Store(root))
    assert fresh.sha(root / "summary.moved") == after["outputs"]["summary.moved"]
    fresh.close()
    (root / "summary.moved").rename(root / "tasks" / "summary.json")
    write_lock(load(root.parent / "manifest.yaml"), root)
    assert (root / "manifest.lock.json").read_text(encoding="utf-8") == text
