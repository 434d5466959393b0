"""The responder interface: request and reply types, the `Responder` protocol, and errors.

A responder turns one `ResponseRequest` (system and user text, the sample's images in the
order reference, A, B, and the generation parameters) into a `Reply`. Retries, rate limits,
caching, validation and budget live in `pipeline.respond`, not here, so every responder
stays small: the openai one maps SDK errors to `ResponderError` (with `retryable` and
`retry_after`), the template and replay ones never touch the network.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pipeline.records import SampleRecord, Usage

__all__ = [
    "ImageInput",
    "Reply",
    "Responder",
    "ResponderError",
    "ResponseRequest",
    "data_url",
    "responder_key",
]


@dataclass(frozen=True)
class ImageInput:
    """One image of a request: its role ("reference", "A", "B"), file and content hash."""

    role: str
    path: Path
    sha256: str


@dataclass(frozen=True)
class ResponseRequest:
    """Everything a responder needs for one answer (one attempt of one sample).

    `reask` counts validation re-asks (0: first ask); a re-ask carries `reask_text` after the
    instruction, so its cache hash differs from the first ask's.
    """

    sample: SampleRecord
    prompt_id: str
    prompt_version: str
    system: str
    user: str
    images: tuple[ImageInput, ...]
    max_tokens: int
    temperature: float
    word_limit: int
    reask: int = 0
    reask_text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # extra body fields for the API
    image_detail: str = "auto"
    # structured output: an OpenAI `response_format` ({"type": "json_schema", ...}) the
    # answer must follow (None: the text protocol); see pipeline.respond.structured
    response_format: dict[str, Any] | None = None

    _LABELS = {"reference": "First picture (pristine):", "A": "Image A:", "B": "Image B:"}

    def messages(self, image_url: Callable[[ImageInput], str]) -> list[dict[str, Any]]:
        """Chat messages: system text, then one user turn with the instruction followed by
        each image (reference first, then A, then B) behind a short label."""
        parts: list[dict[str, Any]] = [{"type": "text", "text": self.user}]
        for img in self.images:
            parts.append({"type": "text", "text": self._LABELS.get(img.role, img.role)})
            parts.append({"type": "image_url",
                          "image_url": {"url": image_url(img), "detail": self.image_detail}})
        if self.reask_text:
            parts.append({"type": "text", "text": self.reask_text})
        return [{"role": "system", "content": self.system}, {"role": "user", "content": parts}]

    def hash_for(self, model: str) -> str:
        """Request hash of (model, prompt id+version, messages with image sha256s instead of
        pixels, parameters): the cache key of a paid call."""
        payload = {
            "model": model,
            "prompt_id": self.prompt_id,
            "prompt_version": self.prompt_version,
            "messages": self.messages(lambda img: f"sha256:{img.sha256}"),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "reask": self.reask,
            "extra": self.extra,
        }
        if self.response_format is not None:  # absent otherwise: text-protocol hashes stay
            payload["response_format"] = self.response_format
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def estimated_prompt_tokens(self, image_tokens: int) -> int:
        """Conservative prompt-token estimate: ~3 characters per token plus a fixed cost per
        image (OpenAI's high-detail tile cost by default) and message overhead."""
        chars = len(self.system) + len(self.user) + len(self.reask_text) + 40 * len(self.images)
        return chars // 3 + image_tokens * len(self.images) + 20


@dataclass(frozen=True)
class Reply:
    """A responder's answer to one request."""

    text: str
    usage: Usage = Usage()
    model: str = ""  # the model that answered (as reported by the server)
    finish_reason: str | None = None
    usage_estimated: bool = False  # the server sent no usage; tokens were estimated
    mode: str = "online"  # how the request travelled: "online" or "batch" (Batch API)


class ResponderError(RuntimeError):
    """A failed call, classified for the retry policy. Messages never hold the API key.

    Attributes:
        kind: short error type written to the failure record ("rate_limited", "timeout",
            "server_error", "connection", "malformed", "bad_request", "auth", "content_policy",
            "replay_missing", "missing_image", ...).
        status: HTTP status, when there was a response.
        retryable: whether the retry policy may try again.
        retry_after: seconds the server asked us to wait (Retry-After), if any.
        raw_output: a short excerpt of the body, for malformed answers.
    """

    def __init__(self, message: str, *, kind: str, status: int | None = None,
                 retryable: bool = False, retry_after: float | None = None,
                 raw_output: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.raw_output = raw_output


@runtime_checkable
class Responder(Protocol):
    """What `pipeline.respond` needs from a responder.

    Attributes:
        name: "openai", "template" or "replay" (written to ResponseRecord.responder).
        model: the model name recorded with each response ("template-v1", "gpt-4o", ...).
        key: folder name under responses/ that keeps responders and models apart.
        paid: calls cost money or quota: the stage caches them and applies rate limits,
            retries and the budget.
        deterministic: the same request always gives the same text (re-asks are pointless).
    """

    name: str
    model: str
    key: str
    paid: bool
    deterministic: bool

    async def arespond(self, request: ResponseRequest) -> Reply:
        """Answer one request (raise ResponderError on failure)."""
        ...

    async def aclose(self) -> None:
        """Release network clients (called at the end of each run)."""
        ...


def data_url(path: Path) -> str:
    """A PNG file as a base64 data URL."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def responder_key(name: str, model: str | None = None) -> str:
    """Folder-safe key: "template", "replay", "openai--gpt-4o-2024-08-06"."""
    if not model or name in ("template", "replay"):
        return name
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in model)
    return f"{name}--{safe}"
