"""A real chat-completions HTTP server on 127.0.0.1 for tests and the benchmark.

The real `openai` client talks to it over HTTP (`base_url=server.base_url`). Every request
is recorded (headers, JSON body, sha256 of each image data URL in order), and what the
server answers is scripted per request:

- `Answer(text)`: 200 with a chat completion (text None: a good answer built from the
  prompt: it names every distortion phrase the prompt states and follows the judge's hint);
- `Status(code, retry_after=..., code_str=...)`: an HTTP error with an OpenAI-style body;
- `Hang(seconds)`: sleep past the client's timeout, then answer;
- `Malformed(body)`: 200 with a body that is not a chat completion;
- `Trickle(pieces, interval_s)`: 200 with a good completion sent in `pieces` parts,
  `interval_s` apart (each read is quick; the whole body is slow).

Scripts: `queue` (consumed in arrival order by every request) and `by_image` (sha256 of an
image -> actions consumed by requests that carry that image; deterministic under
concurrency). Optional `latency_s` per request and a `rpm` limit enforced with a token
bucket (429 + Retry-After, no work done), as a real API does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Answer", "FakeOpenAI", "Hang", "Malformed", "RecordedRequest", "Status",
           "Trickle", "good_answer"]

_PHRASES = ("overly high brightness", "insufficient brightness", "overly high contrast",
            "insufficient contrast", "overly high saturation", "insufficient saturation",
            "oversharpening", "pixelation", "color quantization", "compression", "noise", "blur")


@dataclass(frozen=True)
class Answer:
    text: str | None = None
    prompt_tokens: int = 1000
    completion_tokens: int = 100
    finish_reason: str = "stop"
    usage: bool = True


@dataclass(frozen=True)
class Status:
    code: int
    retry_after: str | None = None
    code_str: str | None = None
    message: str = "scripted error"


@dataclass(frozen=True)
class Hang:
    seconds: float = 5.0


@dataclass(frozen=True)
class Malformed:
    body: str = '{"id": "x", "object": "chat.completion", "choices": [{"index": 0, "mess'


@dataclass(frozen=True)
class Trickle:
    pieces: int = 40
    interval_s: float = 0.5


Action = Answer | Status | Hang | Malformed | Trickle


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    image_sha256: list[str]
    user_text: str
    action: str = ""
    time: float = field(default_factory=time.monotonic)


def _user_text(body: dict[str, Any] | None) -> str:
    texts: list[str] = []
    for msg in (body or {}).get("messages", []):
        if msg.get("role") != "user":
            continue
        content = msg.get("content")
        if isinstance(content, str):
            texts.append(content)
        else:
            texts += [p.get("text", "") for p in content or [] if p.get("type") == "text"]
    return "\n".join(texts)


def _images(body: dict[str, Any] | None) -> list[str]:
    out = []
    for msg in (body or {}).get("messages", []):
        content = msg.get("content")
        if isinstance(content, list):
            for p in content:
                if p.get("type") == "image_url":
                    url = p["image_url"]["url"]
                    m = re.match(r"data:image/png;base64,(.*)$", url, re.S)
                    raw = base64.b64decode(m.group(1)) if m else url.encode()
                    out.append(hashlib.sha256(raw).hexdigest())
    return out


def good_answer(user_text: str) -> str:
    """A valid answer for a prompt: names the stated distortions, follows the judge's hint."""
    first = user_text.split("Compare")[0].split("Assess")[0]
    found = []
    rest = first
    for phrase in _PHRASES:
        if phrase in rest:
            found.append(phrase)
            rest = rest.replace(phrase, " ")
    named = " and ".join(found) if found else "no visible distortion"
    pair = "Image B" in first
    if not pair:
        return (f"The image shows a quiet harbour with boats under a pale sky. It has {named}, "
                f"which affects fine details and textures. Overall, the quality is fair.")
    hint = re.search(r"found Image ([AB]) to be the better", first)
    win = hint.group(1) if hint else "A"
    lose = "B" if win == "A" else "A"
    return (f"Both images show a quiet harbour with boats under a pale sky. The images show "
            f"{named}, which affect fine details and textures. Overall, Image {win} is better "
            f"than Image {lose}.")


class FakeOpenAI:
    """Threaded loopback server speaking POST /v1/chat/completions (see module doc)."""

    def __init__(self, *, queue: Iterable[Action] = (),
                 by_image: dict[str, list[Action]] | None = None,
                 latency_s: float = 0.0, rpm: float | None = None, burst: float | None = None,
                 answer: Callable[[str], str] = good_answer) -> None:
        self.queue: deque[Action] = deque(queue)
        self.by_image = {k: deque(v) for k, v in (by_image or {}).items()}
        self.latency_s = latency_s
        self.answer = answer
        self.requests: list[RecordedRequest] = []
        self.rate_limited = 0
        self._lock = threading.Lock()
        self._rate = rpm / 60.0 if rpm else None
        self._capacity = burst if burst is not None else (max(1.0, self._rate) if self._rate else 0)
        self._tokens = self._capacity
        self._last = time.monotonic()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> FakeOpenAI:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        server.daemon_threads = True  # hanging handlers must not block shutdown
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def chat_calls(self) -> int:
        return sum(1 for r in self.requests if r.path.endswith("/chat/completions"))

    # behaviour -------------------------------------------------------------------------
    def _take_rate_token(self) -> float | None:
        """None when allowed, else seconds until a token is free."""
        if self._rate is None:
            return None
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            self.rate_limited += 1
            return (1.0 - self._tokens) / self._rate

    def _next_action(self, images: list[str]) -> Action:
        with self._lock:
            for sha in images:
                q = self.by_image.get(sha)
                if q:
                    return q.popleft()
            if self.queue:
                return self.queue.popleft()
        return Answer()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                return None

            def _send(self, code: int, payload: bytes,
                      headers: dict[str, str] | None = None,
                      trickle: Trickle | None = None) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    if trickle is None:
                        self.wfile.write(payload)
                        return
                    step = max(1, math.ceil(len(payload) / trickle.pieces))
                    for i in range(0, len(payload), step):
                        self.wfile.write(payload[i:i + step])
                        self.wfile.flush()
                        if i + step < len(payload):
                            time.sleep(trickle.interval_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): fine

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                headers = {k.lower(): v for k, v in self.headers.items()}
                rec = RecordedRequest(path=self.path, headers=headers, body=body,
                                      image_sha256=_images(body), user_text=_user_text(body))
                with fake._lock:
                    fake.requests.append(rec)
                if not self.path.endswith("/chat/completions"):
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                wait = fake._take_rate_token()
                if wait is not None:
                    rec.action = "rate_limited"
                    err = {"error": {"message": "Rate limit reached", "type": "requests",
                                     "code": "rate_limit_exceeded"}}
                    self._send(429, json.dumps(err).encode(),
                               {"Retry-After": str(max(1, math.ceil(wait))),
                                "retry-after-ms": str(int(wait * 1000) + 1)})
                    return
                action = fake._next_action(rec.image_sha256)
                rec.action = type(action).__name__
                if fake.latency_s:
                    time.sleep(fake.latency_s)
                if isinstance(action, Hang):
                    time.sleep(action.seconds)
                    action = Answer()
                if isinstance(action, Status):
                    err = {"error": {"message": action.message, "type": "scripted",
                                     "code": action.code_str}}
                    headers = {"Retry-After": action.retry_after} if action.retry_after else {}
                    self._send(action.code, json.dumps(err).encode(), headers)
                    return
                if isinstance(action, Malformed):
                    self._send(200, action.body.encode())
                    return
                trickle = action if isinstance(action, Trickle) else None
                if trickle is not None:
                    action = Answer()
                text = action.text if action.text is not None else fake.answer(rec.user_text)
                completion: dict[str, Any] = {
                    "id": f"chatcmpl-{len(fake.requests)}", "object": "chat.completion",
                    "created": int(time.time()), "model": (body or {}).get("model", "fake"),
                    "choices": [{"index": 0, "finish_reason": action.finish_reason,
                                 "message": {"role": "assistant", "content": text}}],
                }
                if action.usage:
                    completion["usage"] = {"prompt_tokens": action.prompt_tokens,
                                           "completion_tokens": action.completion_tokens,
                                           "total_tokens": action.prompt_tokens
                                           + action.completion_tokens}
                self._send(200, json.dumps(completion).encode(), trickle=trickle)

        return Handler
