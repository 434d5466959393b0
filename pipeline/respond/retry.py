"""retry-failures: re-run exactly the samples of open records in failures/respond.jsonl."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

from pipeline.manifest import ResponderConfig
from pipeline.respond.common import STAGE, ProgressFn
from pipeline.respond.run import _arun, _combine, _resolve, _run_sync
from pipeline.responders import Responder
from pipeline.store import Store, append_jsonl, atomic_write_jsonl

__all__ = ["retry_failures"]

_RESPONSES_PATH = re.compile(r"^responses/([^/]+)/([^/]+)/([^/]+)\.jsonl$")


def retry_failures(root: Path | str, *, responder: Responder | None = None,
                   config: ResponderConfig | None = None,
                   progress: ProgressFn | None = None,
                   origin: str = "retry-failures") -> dict[str, Any]:
    """Re-run exactly the samples of open records in `failures/respond.jsonl`.

    A sample that failed validation is asked anew: its cached answers that the validator
    rejects are not replayed (new calls replace them in the cache); cached answers that
    pass are replayed, so nothing accepted is paid twice.

    Each record's `path` names the responses file (responder key, kind, split); the
    responder settings come from `responses/<key>/responder.json` (written by the stage)
    unless `config`/`responder` are given. Afterwards the retried records (those whose
    sample was answered or failed again) move to `failures/respond.retried.jsonl`, the
    failures file keeps the rest plus any new failures (rewritten atomically); samples the
    budget left untouched stay open.

    Returns:
        As `respond`, plus "retried" (samples re-run) and "still_failing".
    """
    store = Store(root)
    before = store.failures(STAGE)
    groups: dict[str, set[str]] = {}
    for f in before:
        if f.path and _RESPONSES_PATH.match(f.path):
            groups.setdefault(f.path, set()).add(f.item_id)
    # One run per responder key: all of a key's (kind, split) groups go through one
    # responder and one `_arun`, so the run log gets one line per retry-failures command
    # (per key), not one per responses file.
    by_key: dict[str, list[tuple[str, str, str, set[str]]]] = {}
    for rel, ids in groups.items():
        m = _RESPONSES_PATH.match(rel)
        assert m is not None
        key, kind, split = m.groups()
        by_key.setdefault(key, []).append((rel, kind, split, ids))
    summaries: list[dict[str, Any]] = []
    finished: dict[str, set[str]] = {}
    run_id = uuid.uuid4().hex  # one id over the responder keys of this retry
    for key, targets in by_key.items():
        cfg = config
        if cfg is None:
            info_path = store.root / "responses" / key / "responder.json"
            if not info_path.exists():
                msg = f"{info_path}: missing; cannot tell how {targets[0][0]} was answered"
                raise FileNotFoundError(msg)
            cfg = ResponderConfig.model_validate(json.loads(info_path.read_text())["config"])
        resp = responder if responder is not None and responder.key == key else None
        cfg, resp = _resolve(None, cfg, resp)
        if resp.key != key:
            msg = f"{targets[0][0]}: responder key {key!r} but the settings give {resp.key!r}"
            raise ValueError(msg)
        results = _run_sync(_arun(store, resp, cfg,
                                  [(kind, split, ids) for _, kind, split, ids in targets],
                                  retry_failed=True, progress=progress, budget=None,
                                  origin=origin, run_id=run_id))
        for (rel, *_), result in zip(targets, results, strict=True):
            summaries.append(result.summary)
            finished[rel] = result.finished
    after = store.failures(STAGE)
    new = after[len(before):]
    moved = [f for f in before if f.item_id in finished.get(f.path or "", set())]
    keep = [f for f in before if f.item_id not in finished.get(f.path or "", set())] + new
    if moved:
        append_jsonl(store.root / "failures" / f"{STAGE}.retried.jsonl", moved)
    atomic_write_jsonl(store.failures_path(STAGE), keep)
    out = _combine(summaries)
    out["retried"] = sum(len(v) for v in finished.values())
    out["still_failing"] = len({(f.path, f.item_id) for f in new})
    return out
