"""The request-hash cache: `cache/responses/<hh>/<hash>.json`, one paid reply per request,
written atomically, shared by every split, run and mode that asks the same request."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from pipeline.records import Usage
from pipeline.responders.base import Reply, ResponseRequest
from pipeline.store import atomic_write_json

__all__ = ["ResponseCache", "request_meta"]

log = logging.getLogger(__name__)


def request_meta(request: ResponseRequest) -> dict[str, Any]:
    """What a cache entry records about its request (besides the hash)."""
    return {"prompt_id": request.prompt_id, "prompt_version": request.prompt_version,
            "reask": request.reask, "sample_id": request.sample.sample_id}


class ResponseCache:
    """Request hash -> raw reply, one JSON file each, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, request_hash: str) -> Path:
        return self.root / request_hash[:2] / f"{request_hash}.json"

    def get(self, request_hash: str) -> Reply | None:
        p = self.path(request_hash)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            return Reply(text=data["text"], usage=Usage(**data["usage"]),
                         model=data.get("served_model", ""),
                         finish_reason=data.get("finish_reason"),
                         usage_estimated=bool(data.get("usage_estimated")),
                         mode=data.get("mode", "online"))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as err:  # damaged entry: ask again
            log.warning("ignoring damaged cache entry %s: %s", p, err)
            return None

    def put(self, request_hash: str, reply: Reply, request: ResponseRequest, model: str, *,
            run_id: str | None = None, cost_usd: float | None = None) -> None:
        """Store a paid reply; `run_id` and `cost_usd` let the run log of a run that was
        killed before it logged be repaired from the cache (pipeline.respond.runlog)."""
        self.put_meta(request_hash, reply, request_meta(request), model, run_id=run_id,
                      cost_usd=cost_usd)

    def put_meta(self, request_hash: str, reply: Reply, meta: dict[str, Any],
                 model: str, *, run_id: str | None = None,
                 cost_usd: float | None = None) -> None:
        """`put` with the request's fields (`request_meta`) instead of the request (the
        Batch API's results arrive in a later process than their requests)."""
        extra = {"mode": reply.mode} if reply.mode != "online" else {}
        atomic_write_json(self.path(request_hash), {
            "request_hash": request_hash, "model": model, "served_model": reply.model,
            **meta, **extra,
            "text": reply.text, "usage": reply.usage.model_dump(),
            "finish_reason": reply.finish_reason, "usage_estimated": reply.usage_estimated,
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "run_id": run_id, "cost_usd": cost_usd,
        })

