"""The replay responder: answers read from an existing responses file, no calls.

Accepted files: JSON Lines of ResponseRecord (e.g. responses/<key>/<kind>/<split>.jsonl of
another build) or of `{"sample_id": ..., "text": ...}` rows, or a JSON/YAML mapping
`{sample_id: text}`. The recorded model is the one in the file's records when present.
"""

from __future__ import annotations

import json
from pathlib import Path


from pipeline.records import Usage
from pipeline.responders.base import Reply, ResponderError, ResponseRequest
from pipeline.store import read_jsonl
from pipeline.yamlio import parse_yaml

__all__ = ["ReplayResponder", "load_answers"]


def load_answers(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(sample_id -> text, sample_id -> model) from a replay file.

    Raises:
        FileNotFoundError: the file does not exist (named in the message).
        ValueError: the file has none of the accepted shapes (named, with the reason).
    """
    path = Path(path)
    if not path.is_file():
        msg = f"replay file not found: {path}"
        raise FileNotFoundError(msg)
    texts: dict[str, str] = {}
    models: dict[str, str] = {}
    if path.suffix == ".jsonl":
        for i, row in enumerate(read_jsonl(path), 1):
            if not isinstance(row, dict) or "sample_id" not in row or "text" not in row:
                msg = f"{path}: line {i} needs 'sample_id' and 'text'"
                raise ValueError(msg)
            texts.setdefault(str(row["sample_id"]), str(row["text"]))
            if row.get("model"):
                models.setdefault(str(row["sample_id"]), str(row["model"]))
        return texts, models
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as err:
            msg = f"{path}:{err.lineno}:{err.colno}: not valid JSON: {err.msg}"
            raise ValueError(msg) from None
    else:
        data = parse_yaml(raw, str(path))  # YamlError (a ValueError): one line
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        msg = f"{path}: expected a mapping sample_id -> answer text"
        raise ValueError(msg)
    return {str(k): v for k, v in data.items()}, models


class ReplayResponder:
    """Answers from a file; a sample missing from it fails with kind "replay_missing"."""

    name = "replay"
    key = "replay"
    paid = False
    deterministic = True

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.texts, self.models = load_answers(self.path)
        found = sorted(set(self.models.values()))
        self.model = found[0] if len(found) == 1 else "replay"

    async def arespond(self, request: ResponseRequest) -> Reply:
        sid = request.sample.sample_id
        if sid not in self.texts:
            msg = f"sample {sid} has no answer in replay file {self.path.name}"
            raise ResponderError(msg, kind="replay_missing")
        return Reply(text=self.texts[sid], usage=Usage(),
                     model=self.models.get(sid, self.model), finish_reason="stop")

    async def aclose(self) -> None:
        return None
