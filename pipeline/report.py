"""Dataset report: a Markdown dataset card with statistics, PNG figures and a contact sheet.

Reads what the dataset holds (samples/, responses/, tasks/, failures/, pairs/) and
writes::

    report/README.md                 the dataset card
    report/stats.json                the numbers behind it
    report/figures/categories.png    distortion categories per sample kind
    report/figures/severities.png    severity histogram per sample kind
    report/figures/response_length.png   words per accepted response, per kind
    report/contact_sheet.png         seeded random samples: images, labels, the answer's telling sentences

The figures use only matplotlib's object-oriented API on the Agg canvas (no pyplot state)
and the contact sheet is drawn with Pillow, so the report renders headless and in threads.
Everything is recomputed on each run (idempotent); the contact sheet's samples are drawn
with a generator seeded from the manifest seed.

History is not an output: the card and stats.json describe what the dataset holds (the
accepted responses, their tokens and cost from their records, the failures kept in
failures/), never how many runs it took, so a resumed or re-run build has the same report
bytes. The respond runs' history (runs, calls paid, retries, per-run cost, from the run
logs logs/respond/<key>.jsonl) is summed into logs/respond_summary.json, outside the lock.
"""

from __future__ import annotations

import io
import json
import logging
import re
import textwrap
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from distortions.pairs import CATEGORY_PHRASES
from pipeline.assemble import ALL_TASK_NAMES, ALL_TASKS, iter_task_file, short_answer
from pipeline.drawing import font
from pipeline.learnability import learnability_lines, read_probe_metrics
from pipeline.manifest import Manifest
from pipeline.records import KINDS, FailureRecord, ResponseRecord, SampleRecord
from pipeline.seeds import rng_for
from pipeline.store import Store, atomic_write_bytes, atomic_write_json, read_jsonl

__all__ = ["HISTORY_SUMMARY", "collect_stats", "render_card", "write_history_summary",
           "write_report"]

log = logging.getLogger(__name__)

_CATEGORIES = list(CATEGORY_PHRASES)

HISTORY_SUMMARY = "respond_summary.json"  # under logs/: the respond runs' history


def _splits_of(store: Store, sub: str) -> list[tuple[str, str, Path]]:
    out = []
    for kind in KINDS:
        folder = store.root / sub / kind
        if folder.is_dir():
            out += [(kind, p.stem, p) for p in _split_sorted(folder.glob("*.jsonl"))]
    return out


def _split_sorted(paths: Any) -> list[Path]:
    """Split files in reading order: train, test, then the rest by name."""
    return sorted(paths, key=lambda p: (p.stem != "train", p.stem != "test", p.stem))


def _words(text: str) -> int:
    return len(text.split())


def _lock_info(store: Store) -> dict[str, Any]:
    if not store.lock_path.is_file():
        return {}
    try:
        lock = json.loads(store.lock_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    manifest = lock.get("manifest", lock) if isinstance(lock, dict) else {}
    return manifest if isinstance(manifest, dict) else {}


def _respond_summaries(store: Store) -> list[dict[str, Any]]:
    # The respond stage writes run summaries (counts of rejections by reason, cost); read
    # any JSON file named like one, wherever under responses/ or the root it was put.
    found = []
    candidates = [*store.root.glob("respond*summary*.json"),
                  *store.report_dir.glob("respond*summary*.json"),
                  *(store.root / "responses").glob("**/*summary*.json")]
    for path in sorted(set(candidates)):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict):
            found.append({"file": store.rel(path), **data})
    return found


def _run_totals(run: dict[str, Any]) -> dict[str, Any]:
    """The totals of a respond summary (pipeline.respond.respond returns {"splits", "totals"})."""
    totals = run.get("totals")
    return totals if isinstance(totals, dict) else run


_RUN_COUNTS = ("samples", "todo", "accepted", "failed", "remaining", "calls", "cached",
               "retries", "rejected_answers", "cache_bypassed", "superseded",
               "prompt_tokens", "completion_tokens", "cost_usd")
_RUN_BUCKETS = ("rejected", "rejected_cached", "errors", "flagged")


def _sum_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts (calls, tokens, cost, ...) and per-reason buckets summed over respond runs."""
    out: dict[str, Any] = {"runs": len(runs)}
    for key in _RUN_COUNTS:
        out[key] = 0.0 if key == "cost_usd" else 0
    for key in _RUN_BUCKETS:
        out[key] = Counter()
    for run in runs:
        totals = _run_totals(run)
        for key in _RUN_COUNTS:
            v = totals.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[key] += v
        for key in _RUN_BUCKETS:
            v = totals.get(key)
            if key == "rejected" and not isinstance(v, dict):
                v = totals.get("rejections")
            if isinstance(v, dict):
                out[key].update({str(k): int(n) for k, n in v.items()
                                 if isinstance(n, (int, float))})
    out["cost_usd"] = round(float(out["cost_usd"]), 6)
    for key in _RUN_BUCKETS:
        out[key] = dict(sorted(out[key].items()))
    return out


def _respond_run_logs(store: Store) -> tuple[list[str], list[dict[str, Any]]]:
    """Every run of every logs/respond/<key>.jsonl (pipeline.respond.log_run), oldest
    first by time, with the log file each came from."""
    from pipeline.respond import RUN_LOG, read_run_log

    files, runs = [], []
    for path in sorted((store.logs_dir / RUN_LOG).glob("*.jsonl")):
        rows = read_run_log(path)
        if rows:
            files.append(store.rel(path))
            runs += [{"file": store.rel(path), **r} for r in rows]
    runs.sort(key=lambda r: str(r.get("time", "")))
    return files, runs


def _respond_stats(store: Store) -> dict[str, Any]:
    """Respond-run statistics: totals over every logged run (rejections by reason, calls,
    tokens, cost) and the latest run. Datasets without run logs fall back on the summary
    files older versions wrote (report/respond_summary.json, ...): summed as runs, the
    newest file as the latest view. With run logs, summary files are not added (the build's
    report/respond_summary.json repeats a run that is also logged)."""
    files, runs = _respond_run_logs(store)
    summaries = _respond_summaries(store)
    if runs:
        latest_run = runs[-1]
        same = [r for r in runs if r.get("run_id") == latest_run.get("run_id")]
        # no time stamp here: the card and stats.json are hashed in the lock, and two
        # builds of one manifest must have equal locks (the log keeps the times)
        latest = {"origin": latest_run.get("origin"),
                  "keys": sorted({str(r.get("key")) for r in same}),
                  **_sum_runs(same)}
        return {"files": files, "totals": _sum_runs(runs), "latest": latest,
                "source": "run_log"}
    if summaries:
        newest = max(summaries, key=lambda r: (store.root / r["file"]).stat().st_mtime)
        return {"files": [r["file"] for r in summaries], "totals": _sum_runs(summaries),
                "latest": {"file": newest["file"], **_sum_runs([newest])},
                "source": "summary_files"}
    return {"files": [], "totals": _sum_runs([]), "latest": None, "source": None}


def _task_distortions(recs: Iterable[dict[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
    """Category and severity counts over the images of one task file's records.

    Each distorted image counts each of its distortions; a clean image counts as category
    "clean" and severity "0"; records without distortion metadata (human-judged pairs)
    count as "human" in both.
    """
    cats: Counter[str] = Counter()
    sevs: Counter[str] = Counter()
    for rec in recs:
        per_image = rec.get("distortions")
        if not per_image:
            cats["human"] += 1
            sevs["human"] += 1
            continue
        for applied in (per_image.get("A"), per_image.get("B")):
            if applied is None:
                continue
            if not applied:
                cats["clean"] += 1
                sevs["0"] += 1
            for d in applied:
                cats[d["category"]] += 1
                sevs[str(d["severity"])] += 1
    order = {c: i for i, c in enumerate([*_CATEGORIES, "clean", "human"])}
    return (dict(sorted(cats.items(), key=lambda kv: order.get(kv[0], len(order)))),
            dict(sorted(sevs.items())))


def collect_stats(store: Store, manifest: Manifest | None = None) -> dict[str, Any]:
    """The numbers of the dataset card (also written to report/stats.json)."""
    samples: dict[str, dict[str, int]] = defaultdict(dict)
    categories: dict[str, Counter[str]] = defaultdict(Counter)
    severities: dict[str, Counter[int]] = defaultdict(Counter)
    clean: Counter[str] = Counter()
    notes = 0
    for kind, split, path in _splits_of(store, "samples"):
        n = 0
        for s in read_jsonl(path, SampleRecord):
            n += 1
            for img in (s.image_A, s.image_B):
                if img is None:
                    continue
                notes += len(img.notes)
                if not img.distortions:
                    clean[kind] += 1
                    severities[kind][0] += 1
                for d in img.distortions:
                    categories[kind][d.category] += 1
                    severities[kind][d.severity] += 1
        samples[kind][split] = n

    # Per responder key (responses/<key>/): the template's and a model's answers are
    # different datasets, so counts, lengths and cost are never summed across keys.
    responses: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    lengths: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    usages: dict[str, dict[str, float]] = {}
    flags: Counter[str] = Counter()
    resp_root = store.root / "responses"
    responders = (sorted(p.name for p in resp_root.iterdir() if p.is_dir())
                  if resp_root.is_dir() else [])
    from pipeline.respond.batch import batch_hashes

    by_mode = {"online": 0.0, "batch": 0.0}  # spend of the answers in use, by how they travelled
    for key in responders:
        usage = usages.setdefault(key, {"prompt_tokens": 0, "completion_tokens": 0,
                                        "cost_usd": 0.0, "batch_cost_usd": 0.0})
        via_batch = batch_hashes(store, key)
        for kind in KINDS:
            for path in _split_sorted((resp_root / key / kind).glob("*.jsonl")):
                latest: dict[str, ResponseRecord] = {}
                for r in read_jsonl(path, ResponseRecord):
                    latest[r.sample_id] = r
                responses[key][kind][path.stem] = len(latest)
                for r in latest.values():
                    lengths[key][kind].append(_words(r.text))
                    usage["prompt_tokens"] += r.usage.prompt_tokens
                    usage["completion_tokens"] += r.usage.completion_tokens
                    usage["cost_usd"] += r.cost_usd
                    by_mode["batch" if r.request_hash in via_batch else "online"] += r.cost_usd
                    if r.request_hash in via_batch:
                        usage["batch_cost_usd"] += r.cost_usd
                    flags.update(r.flags)
    length_stats = {
        key: {kind: {"n": len(v), "min": int(min(v)), "median": float(np.median(v)),
                     "mean": round(float(np.mean(v)), 1), "p90": float(np.percentile(v, 90)),
                     "max": int(max(v))}
              for kind, v in per_kind.items() if v}
        for key, per_kind in lengths.items()
    }

    failures: dict[str, Counter[str]] = {}
    fail_root = store.root / "failures"
    if fail_root.is_dir():
        for path in sorted(fail_root.glob("*.jsonl")):
            c: Counter[str] = Counter()
            for row in read_jsonl(path):
                try:
                    c[FailureRecord.model_validate(row).error_type] += 1
                except ValueError:
                    c["unreadable_failure_record"] += 1
            failures[path.stem] = c


    tasks_summary: dict[str, Any] = {}
    summary_path = store.root / "tasks" / "summary.json"
    if summary_path.is_file():
        tasks_summary = json.loads(summary_path.read_text(encoding="utf-8"))
    task_counts: dict[str, dict[str, int]] = {}
    task_categories: dict[str, dict[str, dict[str, int]]] = {}
    task_severities: dict[str, dict[str, dict[str, int]]] = {}
    answer_forms: Counter[str] = Counter()
    for task in ALL_TASK_NAMES:
        folder = store.root / "tasks" / task
        if not folder.is_dir():
            continue
        for path in _split_sorted(folder.glob("*.json")):
            n = [0]

            def walk(path: Path = path, n: list[int] = n) -> Iterator[dict[str, Any]]:
                for r in iter_task_file(path):  # streamed: a task file is never held whole
                    n[0] += 1
                    answer_forms[r.get("answer_form", "free")] += 1
                    yield r

            cats, sevs = _task_distortions(walk())
            task_counts.setdefault(task, {})[path.stem] = n[0]
            task_categories.setdefault(task, {})[path.stem] = cats
            task_severities.setdefault(task, {})[path.stem] = sevs

    pairs: dict[str, dict[str, int]] = {}
    pair_root = store.root / "pairs"
    if pair_root.is_dir():
        for folder in sorted(p for p in pair_root.iterdir() if p.is_dir()):
            pairs[folder.name] = {f.stem: sum(1 for _ in read_jsonl(f))
                                  for f in _split_sorted(folder.glob("*.jsonl"))}

    info = _lock_info(store)
    name = manifest.name if manifest else info.get("name", store.root.name)
    seed = manifest.seed if manifest else info.get("seed", 0)
    return {
        "name": name, "seed": seed,
        "responder": (manifest.responder.kind if manifest else
                      (info.get("responder") or {}).get("kind")),
        "samples": {k: dict(v) for k, v in samples.items()},
        "categories": {k: dict(v) for k, v in categories.items()},
        "severities": {k: {str(s): n for s, n in sorted(v.items())} for k, v in severities.items()},
        "clean_images": dict(clean), "degradation_notes": notes,
        "responses": {k: {kk: dict(vv) for kk, vv in v.items()} for k, v in responses.items()},
        "response_words": length_stats, "response_flags": dict(flags),
        "usage": {key: {**u, "cost_usd": round(u["cost_usd"], 6),
                        "batch_cost_usd": round(u["batch_cost_usd"], 6)}
                  for key, u in usages.items()},
        "cost_by_mode": {k: round(v, 6) for k, v in by_mode.items()},
        # the respond failures the dataset keeps (failures/respond.jsonl), by error type
        "rejections": dict(failures.get("respond", {})),
        "failures": {k: dict(v) for k, v in failures.items()},
        "tasks": task_counts, "answer_forms": dict(answer_forms), "pairs": pairs,
        "task_categories": task_categories, "task_severities": task_severities,
        "task_skipped": tasks_summary.get("skipped", {}),
        "task_dropped": tasks_summary.get("dropped", {}),
        "task_filtered": tasks_summary.get("filtered", {}),
        "_lengths": {k: dict(v) for k, v in lengths.items()},
        "_probe": read_probe_metrics(store.root),  # probe/metrics.json (Learnability)
    }


# --------------------------------------------------------------------------- figures
def _figure(width: float, height: float, *, bottom: float = 0.6,
            right: float = 0.2):  # noqa: ANN202 - matplotlib types are optional
    """A figure of `width` x `height` inches with fixed margins (inches): room for the
    y labels (counts up to 6 digits) and the title, `bottom` for the x labels and `right`
    for a legend beside the axes. Fixed, not matplotlib's constrained layout: that solver
    was a third of the time of each chart, and these charts' labels are known."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.8 / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - 0.35 / height)
    return fig


def _save(picture: Any, path: Path) -> None:
    """A matplotlib figure or a Pillow image, as PNG, written atomically."""
    buf = io.BytesIO()
    if isinstance(picture, Image.Image):
        picture.save(buf, format="PNG")
    else:
        picture.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def _bar_groups(ax: Any, labels: list[str], series: dict[str, list[int]]) -> None:
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name)
    from matplotlib.ticker import MaxNLocator

    ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if series:
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        ax.text(0.5, 0.5, "no synthetic samples", ha="center", va="center",
                transform=ax.transAxes)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _plot_categories(stats: dict[str, Any], path: Path) -> None:
    fig = _figure(9, 4, bottom=1.0, right=1.1)  # rotated category names, legend beside
    ax = fig.add_subplot()
    series = {k: [stats["categories"].get(k, {}).get(c, 0) for c in _CATEGORIES]
              for k in KINDS if k in stats["categories"]}
    _bar_groups(ax, [CATEGORY_PHRASES[c] for c in _CATEGORIES], series)
    ax.set_ylabel("distortions applied")
    ax.set_title("Distortion categories per sample kind (images A and B)")
    _save(fig, path)


def _plot_severities(stats: dict[str, Any], path: Path) -> None:
    fig = _figure(7, 3.6, bottom=0.65, right=1.1)  # legend beside
    ax = fig.add_subplot()
    levels = ["0", "1", "2", "3", "4", "5"]
    series = {k: [stats["severities"].get(k, {}).get(s, 0) for s in levels]
              for k in KINDS if k in stats["severities"]}
    _bar_groups(ax, ["0 (clean)", "1", "2", "3", "4", "5"], series)
    ax.set_ylabel("count")
    ax.set_title("Severities per sample kind (md: each distortion counted)")
    _save(fig, path)


def _plot_lengths(stats: dict[str, Any], path: Path) -> None:
    fig = _figure(7, 3.6, bottom=0.55)
    ax = fig.add_subplot()
    data = {(key, kind): v for key, per_kind in stats["_lengths"].items()
            for kind, v in per_kind.items() if v}
    if data:
        top = max(max(v) for v in data.values())
        bins = np.linspace(0, max(10, top) + 1, 25)
        keys = sorted({key for key, _ in data})
        for key in keys:
            for kind in KINDS:
                if (key, kind) in data:
                    name = kind if len(keys) == 1 else f"{key} {kind}"
                    ax.hist(data[key, kind], bins=bins, alpha=0.55,
                            label=f"{name} (n={len(data[key, kind])})")
        ax.legend(fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "no responses", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("words per accepted response")
    ax.set_ylabel("responses")
    ax.set_title("Response length")
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def _label(distortions: list[Any]) -> str:
    if not distortions:
        return "clean"
    return " + ".join(f"{d.name} s{d.severity}" for d in distortions)


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    return [p.strip() for p in parts if p.strip()]


def telling_sentences(text: str, sample: SampleRecord) -> list[str]:
    """The sentences of an answer that say something about quality: the first that names
    a true distortion category of the sample (synonym table of the validator) and, for a
    pair, the first that gives the verdict. A clean single image falls back to the last
    sentence (the overall judgement), never to the scene description that opens answers."""
    from pipeline.validate import mentions_category, parse_verdict

    sentences = _sentences(text)
    if not sentences:
        return []
    categories = [d.category for img in (sample.image_A, sample.image_B) if img is not None
                  for d in img.distortions]
    chosen: list[str] = []
    naming = next((t for t in sentences if any(mentions_category(t, c) for c in categories)),
                  None)
    if naming is not None:
        chosen.append(naming)
    if sample.image_B is not None:
        verdict = next((t for t in sentences if parse_verdict(t) is not None), None)
        if verdict is not None and verdict not in chosen:
            chosen.append(verdict)
    return chosen or [sentences[-1]]


def _caption(text: str, sample: SampleRecord, width: int = 60, max_lines: int = 4) -> str:
    lines = textwrap.wrap(" ".join(telling_sentences(text, sample)), width)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width - 3] + "..."
    return "\n".join(lines)


def _strip(store: Store, s: SampleRecord, width: int) -> Image.Image:
    """ref | A | B side by side, `width` px wide: always three slots (the last blank for a
    single image), so every cell shows its images at one scale. The slots take the ref's
    aspect (at most twice as high as wide); an image of another shape is fitted into its
    slot, never stretched.

    Raises:
        ValueError: "unreadable: <path>", an image that cannot be read.
    """
    paths = [s.image_ref, s.image_A.path] + ([s.image_B.path] if s.image_B else [])
    images = []
    for p in paths:
        try:
            with Image.open(store.abs(p)) as im:
                images.append(im.convert("RGB"))
        except (OSError, ValueError) as err:
            raise ValueError(f"unreadable: {p}") from err
    tile_w = (width - 2 * _GAP) // 3
    height = max(1, min(2 * tile_w, round(tile_w * images[0].height / images[0].width)))
    strip = Image.new("RGB", (width, height), "white")
    for i, im in enumerate(images):
        scale = min(tile_w / im.width, height / im.height)
        w, h = max(1, round(im.width * scale)), max(1, round(im.height * scale))
        strip.paste(im.resize((w, h), Image.Resampling.BILINEAR),
                    (i * (tile_w + _GAP) + (tile_w - w) // 2, (height - h) // 2))
    return strip


def _fit_lines(text: str, width: int, ui: Any) -> list[str]:
    """`text` in lines of at most `width` px, broken after a "/" or a space (a path or a
    message), a word too long for a line cut with "..."."""
    lines: list[str] = []
    line = ""
    for word in re.findall(r"[^/ ]+[/ ]?|[/ ]", text):
        if line and ui.getlength(line + word) > width:
            lines.append(line.rstrip())
            line = ""
        line += word
    lines.append(line.rstrip())
    out = []
    for ln in lines:
        while ui.getlength(ln) > width and len(ln) > 4:
            ln = ln[:-4] + "..."
        out.append(ln)
    return out


# The contact sheet: cells of _CELL_W px, _COLS to a row, each a title (kind, split, the
# distortions of A and B, the judge's verdict), the ref | A | B strip in a frame, and the
# caption (the answer's telling sentences, or the brief answer). Drawn with Pillow: a
# matplotlib figure of the same took half a second per report, for 12 images and text.
_COLS, _CELL_W, _PAD, _GAP, _FONT, _LINE = 3, 420, 6, 4, 11, 13
_INK = (0, 0, 0)


def _cell_text(s: SampleRecord, answer: str | None) -> tuple[list[str], list[str]]:
    """The title lines and the caption lines of a sample's cell."""
    head = "ref | A | B" if s.image_B else "ref | A"
    title = [f"{s.kind} {s.split}  [{head}]"]
    for name, img in (("A", s.image_A), ("B", s.image_B)):
        if img is None:
            continue
        title += textwrap.wrap(f"{name}: {_label(img.distortions)}", 64,
                               subsequent_indent="    ")
        title.append(f"    = {short_answer(img.distortions)}")
    if s.judge is not None:
        title[0] += f"   judge: {'A' if s.judge.A_better_B else 'B'} better"
    caption = (_caption(answer, s) if answer
               else f"brief: {short_answer(s.image_A.distortions)}")
    return title, caption.split("\n")


def _cell(title: list[str], strip: Image.Image | str, caption: list[str], title_rows: int,
          frame_h: int) -> Image.Image:
    """One cell: the title, the strip (or the message of an unreadable image) in a frame
    `frame_h` px high below `title_rows` lines, the caption below the frame. The rows and
    the frame height are a row's largest, so a row's frames and captions line up."""
    inner = _CELL_W - 2 * _PAD
    top = _PAD + _LINE * title_rows + 2
    below = top + frame_h + 4
    cell = Image.new("RGB", (_CELL_W, below + _LINE * len(caption) + 2 * _PAD), "white")
    draw = ImageDraw.Draw(cell)
    ui = font(_FONT)
    for i, line in enumerate(title):
        draw.text((_PAD, _PAD + i * _LINE), line, fill=_INK, font=ui)
    draw.rectangle((_PAD, top, _PAD + inner - 1, top + frame_h + 1), outline=_INK)
    if isinstance(strip, str):  # "unreadable: <path>", in lines that fit the frame
        lines = _fit_lines(strip, inner - 8, ui)[: max(1, (frame_h - 4) // _LINE)]
        y0 = top + 1 + (frame_h - _LINE * len(lines)) // 2
        for i, line in enumerate(lines):
            draw.text((_PAD + 4, y0 + i * _LINE), line, fill=_INK, font=ui)
    else:
        cell.paste(strip, (_PAD + 1, top + 1 + (frame_h - strip.height) // 2))
    for i, line in enumerate(caption):
        draw.text((_PAD, below + i * _LINE), line, fill=_INK, font=ui)
    return cell


def _contact_sheet(store: Store, stats: dict[str, Any], n: int, path: Path,
                   responder_key: str | None) -> list[str]:
    # Two passes, so the samples are never all in memory: the ids (sorted) to draw from,
    # then the records of the drawn ones.
    ids: list[str] = []
    for _, _, p in _splits_of(store, "samples"):
        ids += [row["sample_id"] for row in read_jsonl(p)]
    if not ids or n == 0:
        empty = Image.new("RGB", (600, 150), "white")
        ImageDraw.Draw(empty).text((300, 75), "no samples", fill=_INK, font=font(14),
                                   anchor="mm")
        _save(empty, path)
        return []
    rng = rng_for(int(stats["seed"]), "report/contact_sheet")
    ids.sort()
    picks = [ids[i] for i in sorted(rng.choice(len(ids), size=min(n, len(ids)), replace=False))]
    del ids
    found: dict[str, SampleRecord] = {}
    wanted_ids = set(picks)
    for _, _, p in _splits_of(store, "samples"):
        for row in read_jsonl(p):
            if row["sample_id"] in wanted_ids:
                found[row["sample_id"]] = SampleRecord.model_validate(row)
    chosen = [found[sid] for sid in picks]
    answers: dict[str, str] = {}
    if responder_key:
        wanted = {s.sample_id for s in chosen}
        for kind, split in sorted({(s.kind, s.split) for s in chosen}):  # one pass per file
            for r in read_jsonl(store.responses_path(responder_key, kind, split), ResponseRecord):
                if r.sample_id in wanted:
                    answers[r.sample_id] = r.text
    rows = []
    for i in range(0, len(chosen), _COLS):
        texts = [_cell_text(s, answers.get(s.sample_id)) for s in chosen[i:i + _COLS]]
        strips: list[Image.Image | str] = []
        for s in chosen[i:i + _COLS]:
            try:
                strips.append(_strip(store, s, _CELL_W - 2 * _PAD - 2))
            except ValueError as err:  # the frame says which file
                strips.append(str(err))
        title_rows = max(len(title) for title, _ in texts)
        frame_h = max([st.height for st in strips if not isinstance(st, str)] or [60])
        rows.append([_cell(title, strip, caption, title_rows, frame_h)
                     for (title, caption), strip in zip(texts, strips)])
    heights = [max(c.height for c in row) for row in rows]
    sheet = Image.new("RGB", (_COLS * _CELL_W, sum(heights)), "white")
    y = 0
    for row, h in zip(rows, heights):
        for j, c in enumerate(row):
            sheet.paste(c, (j * _CELL_W, y))
        y += h
    _save(sheet, path)
    return [s.sample_id for s in chosen]


# --------------------------------------------------------------------------- card
def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _order(splits: set[str]) -> list[str]:
    return sorted(splits, key=lambda s: (s != "train", s != "test", s))


def _task_distortion_tables(stats: dict[str, Any]) -> list[str]:
    """Per task file and split: images by category and by severity (folded: they are long)."""
    per_task = stats.get("task_categories") or {}
    if not per_task:
        return []
    cols = [c for c in [*_CATEGORIES, "clean", "human"]
            if any(c in v for sp in per_task.values() for v in sp.values())]
    levels = [lv for lv in ("0", "1", "2", "3", "4", "5", "human")
              if any(lv in v for sp in stats["task_severities"].values() for v in sp.values())]
    cat_rows = [[task, split, *[cats.get(c, 0) for c in cols]]
                for task, per_split in per_task.items() for split, cats in per_split.items()]
    sev_rows = [[task, split, *[sevs.get(lv, 0) for lv in levels]]
                for task, per_split in stats["task_severities"].items()
                for split, sevs in per_split.items()]
    return ["<details><summary>Categories and severities per task file (images A and B; "
            "human = human-judged pairs)</summary>", "",
            _table(["task", "split", *cols], cat_rows), "",
            _table(["task", "split", *[f"sev {lv}" if lv != "human" else lv for lv in levels]],
                   sev_rows), "", "</details>", ""]


def render_card(stats: dict[str, Any], *, contact: list[str]) -> str:
    """The dataset card (Markdown) for `stats` from `collect_stats`."""
    out = [f"# Dataset card: {stats['name']}", "",
           "Synthetic descriptive image-quality-assessment data in the DQ-495K / DepictQA "
           "layout, built by dqgen. Task files: `tasks/<task>/<split>.json` (train: "
           "`conversations`; other splits: `query` + `answer`). Image paths are relative to "
           "the dataset root.", "",
           f"- manifest seed: `{stats['seed']}`", f"- responder: `{stats['responder']}`",
           f"- clean images: {sum(stats['clean_images'].values())}; "
           f"graceful-degradation notes: {stats['degradation_notes']}", ""]
    splits = _order({s for v in stats["tasks"].values() for s in v})
    out += ["## Task files", ""]
    spec = {t.name: t for t in ALL_TASKS}
    rows = [[t, spec[t].task_type, *[stats["tasks"][t].get(s, 0) for s in splits],
             sum(stats["tasks"][t].values())] for t in ALL_TASK_NAMES if t in stats["tasks"]]
    out += [_table(["task", "task_type", *splits, "total"], rows) if rows else "(none)", ""]
    if stats["answer_forms"]:
        out += ["Answer forms: " + ", ".join(f"{k} {v}" for k, v in
                                             sorted(stats["answer_forms"].items())), ""]
    if stats["pairs"]:
        out += ["Human-judged pairs (pairs/<source>/<split>.jsonl) in the brief comparison tasks:",
                "", _table(["source", "split", "pairs"],
                           [[src, split, n] for src, v in stats["pairs"].items()
                            for split, n in v.items()]), ""]
    out += ["## Samples", ""]
    s_splits = _order({s for v in stats["samples"].values() for s in v})
    rows = [[k, *[stats["samples"][k].get(s, 0) for s in s_splits]]
            for k in KINDS if k in stats["samples"]]
    out += [_table(["kind", *s_splits], rows) if rows else "(none)", ""]
    kinds = [k for k in KINDS if k in stats["categories"]]
    if kinds:
        out += ["### Distortion categories (images A and B)", ""]
        rows = [[CATEGORY_PHRASES[c], *[stats["categories"][k].get(c, 0) for k in kinds]]
                for c in _CATEGORIES]
        out += [_table(["category", *kinds], rows), ""]
    kinds = [k for k in KINDS if k in stats["severities"]]
    if kinds:
        out += ["### Severities (0 = clean)", ""]
        rows = [[lvl, *[stats["severities"][k].get(lvl, 0) for k in kinds]]
                for lvl in ("0", "1", "2", "3", "4", "5")]
        out += [_table(["severity", *kinds], rows), ""]
    out += ["![categories](figures/categories.png)", "", "![severities](figures/severities.png)",
            ""]
    out += _task_distortion_tables(stats)
    out += ["## Responses", ""]
    rows = [[key, kind, split, n] for key, per_kind in stats["responses"].items()
            for kind, per_split in per_kind.items() for split, n in per_split.items()]
    out += [_table(["responder", "kind", "split", "accepted"], rows) if rows else "(none)", ""]
    if stats["response_words"]:
        rows = [[key, k, v["n"], v["min"], v["median"], v["mean"], v["p90"], v["max"]]
                for key, per_kind in stats["response_words"].items()
                for k, v in per_kind.items()]
        out += ["Words per response:", "",
                _table(["responder", "kind", "n", "min", "median", "mean", "p90", "max"],
                       rows), "",
                "![response length](figures/response_length.png)", ""]
    if stats["response_flags"]:
        out += ["Flags kept on accepted responses: " + ", ".join(
            f"{k} {v}" for k, v in sorted(stats["response_flags"].items())), ""]
    out += ["## Rejections, failures and drops", ""]
    rows = [[stage, reason, n] for stage, c in sorted(stats["failures"].items())
            for reason, n in sorted(c.items())]
    for stage, key in (("assemble (skipped)", "task_skipped"),
                       ("convert (dropped)", "task_dropped")):
        rows += [[stage, reason, n] for reason, n in sorted(stats[key].items())]
    rows += [["severity filter (no-ref brief)", task, n]
             for task, n in sorted(stats["task_filtered"].items())]
    out += [_table(["stage", "reason", "count"], rows) if rows else "None recorded.", ""]
    out += ["## Cost", "",
            *(f"- accepted responses of `{key}`: {u['prompt_tokens']} prompt + "
              f"{u['completion_tokens']} completion tokens, ${u['cost_usd']:.4f} (from their "
              "records)"
              + (f"; online ${u['cost_usd'] - u['batch_cost_usd']:.4f}, batch (Batch API) "
                 f"${u['batch_cost_usd']:.4f}" if u.get("batch_cost_usd") else "")
              for key, u in stats["usage"].items()),
            f"- history of the respond runs (runs, calls paid, retries, per-run cost): "
            f"`logs/{HISTORY_SUMMARY}` (not part of the dataset)", ""]
    out += learnability_lines(stats.get("_probe"))
    out += ["## Contact sheet", "",
            f"{len(contact)} samples drawn at random (seeded): reference | A (| B), their "
            "distortions with severities, and the sentences of the accepted answer that name "
            "the distortion and give the verdict (or the brief answer when there is none).", "", "![contact sheet](contact_sheet.png)", ""]
    return "\n".join(out)


def write_report(manifest: Manifest | None, store: Store, *,
                 respond_summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write report/README.md, report/stats.json, the figures and the contact sheet.

    Args:
        manifest: the build manifest (name, seed, responder); None reads what it can from
            manifest.lock.json.
        store: the dataset folder.
        respond_summary: the respond stage's summary of this build run; history, kept in
            logs/respond_summary.json with the totals of every logged run
            (`write_history_summary`). The card and stats.json hold only what the dataset
            holds, so their bytes do not depend on how many runs it took.

    Returns:
        {"card": path, "figures": [paths], "contact_sheet": path, "stats": stats}.

    Raises:
        ImportError: matplotlib is missing (pip install 'dqgen[export]').
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:  # pragma: no cover - in the default test environment
        msg = "the report needs matplotlib: pip install 'dqgen[export]'"
        raise ImportError(msg) from err
    out = store.report_dir
    # older versions kept the latest run's summary here: history, not an output
    (out / "respond_summary.json").unlink(missing_ok=True)
    write_history_summary(store, respond_summary)
    stats = collect_stats(store, manifest)
    figures = out / "figures"
    _plot_categories(stats, figures / "categories.png")
    _plot_severities(stats, figures / "severities.png")
    _plot_lengths(stats, figures / "response_length.png")
    key = None
    if manifest is not None:
        from pipeline.assemble import responder_key

        key = responder_key(manifest, store)
    elif stats["responses"]:
        key = next(iter(stats["responses"]))
    n = manifest.tasks.contact_sheet_samples if manifest is not None else 12
    contact = _contact_sheet(store, stats, n, out / "contact_sheet.png", key)
    card = render_card(stats, contact=contact)
    from pipeline.evaluate import evaluation_section  # eval/*/metrics.json, if any

    agreement = evaluation_section(store)
    if agreement:
        card = card.rstrip("\n") + "\n\n" + "\n".join(agreement)
    atomic_write_bytes(out / "README.md", card.encode("utf-8"))
    public = {k: v for k, v in stats.items() if not k.startswith("_")}
    public["contact_sheet_samples"] = contact
    atomic_write_json(out / "stats.json", public)
    return {"card": str(out / "README.md"),
            "figures": [str(figures / f) for f in ("categories.png", "severities.png",
                                                  "response_length.png")],
            "contact_sheet": str(out / "contact_sheet.png"), "stats": public}


def write_history_summary(store: Store, respond_summary: dict[str, Any] | None = None
                          ) -> Path | None:
    """Write logs/respond_summary.json: the respond runs' history (not part of the dataset).

    Holds the totals over every run of the run logs logs/respond/<key>.jsonl (runs, calls
    paid, cached, retries, tokens, cost, rejections by reason), the latest run, and the
    summary of this build's respond stage when given. Nothing when there is no history.

    Returns:
        the file written, or None.
    """
    stats = _respond_stats(store)
    if not stats["files"] and not respond_summary:
        return None
    doc = {"run_logs": stats["files"], "source": stats["source"], "totals": stats["totals"],
           "latest": stats["latest"], "this_build": respond_summary}
    path = store.logs_dir / HISTORY_SUMMARY
    atomic_write_json(path, doc)
    return path
