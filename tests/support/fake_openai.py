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

The Batch API too: POST /v1/files (multipart upload), GET /v1/files/<id>[/content],
POST /v1/batches, GET /v1/batches[/<id>], POST /v1/batches/<id>/cancel. Each retrieve
moves a batch one status on (validating -> in_progress -> finalizing -> completed) as its
plan says (`batch_plan`, one per create: "complete", "hold" until `release()`, "expire"
after half its lines, "fail" at validation). At the end every line is answered like a
chat request (the same scripts: a `Status` >= 500 becomes an error-file line, other
statuses an output line with that status_code). `batch_creates`, `file_uploads`,
`submitted_custom_ids()` and `batch_lines` are the log that shows what was submitted.
`response_format=False` makes the server refuse any request carrying a response_format
(HTTP 400); otherwise a request with one is answered as JSON {"verdict", "text"}.
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
                 answer: Callable[[str], str] = good_answer,
                 response_format: bool = True, batch_plan: Iterable[str] = ()) -> None:
        self.queue: deque[Action] = deque(queue)
        self.by_image = {k: deque(v) for k, v in (by_image or {}).items()}
        self.latency_s = latency_s
        self.answer = answer
        self.requests: list[RecordedRequest] = []
        self.response_format = response_format  # False: 400 on any response_format
        self.structured = 0  # answers given in the response_format's JSON
        # the Batch API: uploaded files, batches, each batch's plan ("complete", "hold",
        # "expire", "fail"; consumed per create, default "complete"), lines answered
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_plan: deque[str] = deque(batch_plan)
        self.batch_lines: list[RecordedRequest] = []
        self.rate_limited = 0
        self._lock = threading.RLock()  # reentrant: a batch retrieve answers its lines
        self._trickles: dict[int, Trickle] = {}  # request -> its slow body (do_POST)
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

    def _complete(self, body: dict[str, Any] | None,
                  rec: RecordedRequest) -> tuple[int, dict[str, Any] | bytes, dict[str, str]]:
        """One chat completion for a request body: (status, JSON payload or raw bytes,
        headers). Used by POST /v1/chat/completions and by each line of a batch."""
        action = self._next_action(rec.image_sha256)
        rec.action = type(action).__name__
        if self.latency_s:
            time.sleep(self.latency_s)
        if isinstance(action, Hang):
            time.sleep(action.seconds)
            action = Answer()
        if isinstance(action, Status):
            err = {"error": {"message": action.message, "type": "scripted",
                             "code": action.code_str}}
            headers = {"Retry-After": action.retry_after} if action.retry_after else {}
            return action.code, err, headers
        if isinstance(action, Malformed):
            return 200, action.body.encode(), {}
        if isinstance(action, Trickle):  # a good answer, its body sent slowly (do_POST)
            with self._lock:
                self._trickles[id(rec)] = action
            action = Answer()
        fmt = (body or {}).get("response_format")
        if fmt is not None and not self.response_format:
            rec.action = "response_format_refused"
            return 400, {"error": {"message": "response_format is not supported by this "
                                   "server", "type": "invalid_request_error",
                                   "code": "unsupported_parameter"}}, {}
        text = action.text if action.text is not None else self.answer(rec.user_text)
        if fmt is not None and action.text is None:  # structured: the schema's fields
            self.structured += 1
            m = re.search(r"Image ([AB]) is better", text)
            text = json.dumps({"verdict": m.group(1) if m else "A", "text": text})
        completion: dict[str, Any] = {
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion",
            "created": int(time.time()), "model": (body or {}).get("model", "fake"),
            "choices": [{"index": 0, "finish_reason": action.finish_reason,
                         "message": {"role": "assistant", "content": text}}],
        }
        if action.usage:
            completion["usage"] = {"prompt_tokens": action.prompt_tokens,
                                   "completion_tokens": action.completion_tokens,
                                   "total_tokens": action.prompt_tokens
                                   + action.completion_tokens}
        return 200, completion, {}

    # the Batch API: /v1/files and /v1/batches ------------------------------------------
    @property
    def batch_creates(self) -> list[RecordedRequest]:
        """Every POST /v1/batches (the log that proves no duplicate submission)."""
        return [r for r in self.requests if r.path.rstrip("/").endswith("/batches")
                and r.body is not None]

    @property
    def file_uploads(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.rstrip("/").endswith("/files")
                and r.action == "upload"]

    def submitted_custom_ids(self) -> list[str]:
        """custom_ids of every batch created, in order (duplicates stay visible)."""
        out: list[str] = []
        for b in self.batches.values():
            out += [json.loads(line)["custom_id"] for line in
                    self.files[b["input_file_id"]]["content"].decode().splitlines() if line]
        return out

    def release(self, batch_id: str | None = None) -> None:
        """Let held batches (batch_plan "hold") finish at their next retrieve."""
        with self._lock:
            for bid, b in self.batches.items():
                if batch_id in (None, bid):
                    b["_hold"] = False

    def _new_file(self, content: bytes, purpose: str, filename: str) -> dict[str, Any]:
        fid = f"file-{len(self.files) + 1:04d}"
        obj = {"id": fid, "object": "file", "bytes": len(content), "created_at": int(time.time()),
               "filename": filename, "purpose": purpose, "status": "processed"}
        self.files[fid] = {**obj, "content": content}
        return obj

    def _public(self, b: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in b.items() if not k.startswith("_")}

    def _batch_post(self, path: str, headers: Any, raw: bytes,
                    rec: RecordedRequest) -> tuple[int, dict[str, Any]]:
        path = path.split("?")[0].rstrip("/")
        if path.endswith("/files"):
            ctype = headers.get("Content-Type", "")
            m = re.search(r"boundary=([^;]+)", ctype)
            if not m:
                return 400, {"error": {"message": "multipart body expected"}}
            fields: dict[str, bytes] = {}
            filename = "upload.jsonl"
            for part in raw.split(b"--" + m.group(1).strip('"').encode()):
                if b"\r\n\r\n" not in part:
                    continue
                head, _, data = part.partition(b"\r\n\r\n")
                name = re.search(rb'name="([^"]+)"', head)
                fn = re.search(rb'filename="([^"]*)"', head)
                if name:
                    fields[name.group(1).decode()] = data[:-2] if data.endswith(b"\r\n") else data
                if fn:
                    filename = fn.group(1).decode()
            if "file" not in fields:
                return 400, {"error": {"message": "no file part"}}
            rec.action = "upload"
            with self._lock:
                return 200, self._new_file(fields["file"], fields.get("purpose", b"").decode(),
                                           filename)
        if path.endswith("/batches"):
            body = json.loads(raw or b"{}")
            rec.body = body
            fid = body.get("input_file_id")
            if fid not in self.files:
                return 404, {"error": {"message": f"no file {fid}"}}
            with self._lock:
                bid = f"batch_{len(self.batches) + 1:04d}"
                n = len([x for x in self.files[fid]["content"].splitlines() if x.strip()])
                plan = self.batch_plan.popleft() if self.batch_plan else "complete"
                self.batches[bid] = {
                    "id": bid, "object": "batch", "endpoint": body.get("endpoint"),
                    "input_file_id": fid, "completion_window": body.get("completion_window"),
                    "created_at": int(time.time()), "status": "validating",
                    "metadata": body.get("metadata"), "output_file_id": None,
                    "error_file_id": None,
                    "request_counts": {"total": n, "completed": 0, "failed": 0},
                    "_plan": plan, "_hold": plan == "hold", "_polls": 0}
                rec.action = "batch_create"
                return 200, self._public(self.batches[bid])
        m = re.search(r"/batches/([^/]+)/cancel$", path)
        if m and m.group(1) in self.batches:
            with self._lock:
                b = self.batches[m.group(1)]
                if b["status"] not in ("completed", "failed", "expired", "cancelled"):
                    b["status"] = "cancelled"
                return 200, self._public(b)
        return 404, {"error": {"message": f"not found: {path}"}}

    def _advance(self, b: dict[str, Any]) -> None:
        """One retrieve moves a batch one status on: validating -> in_progress ->
        finalizing -> completed (or failed / expired as its plan says); "hold" waits in
        in_progress until `release`."""
        b["_polls"] += 1
        status, plan = b["status"], b["_plan"]
        if status == "validating":
            b["status"] = "failed" if plan == "fail" else "in_progress"
            if plan == "fail":
                b["errors"] = {"object": "list", "data": [
                    {"code": "invalid_request", "message": "scripted validation failure"}]}
        elif status == "in_progress" and not b["_hold"]:
            if plan == "expire":
                self._run_lines(b, limit=b["request_counts"]["total"] // 2)
                b["status"] = "expired"
            else:
                b["status"] = "finalizing"
        elif status == "finalizing":
            self._run_lines(b)
            b["status"] = "completed"

    def _run_lines(self, b: dict[str, Any], limit: int | None = None) -> None:
        out, err = [], []
        lines = [x for x in self.files[b["input_file_id"]]["content"].decode().splitlines()
                 if x.strip()]
        for line in lines[:limit]:
            req = json.loads(line)
            body = req["body"]
            rec = RecordedRequest(path="batch:" + req["url"], headers={}, body=body,
                                  image_sha256=_images(body), user_text=_user_text(body))
            self.batch_lines.append(rec)
            code, payload, _ = self._complete(body, rec)
            rid = f"req_{len(self.batch_lines)}"
            if code == 200 and isinstance(payload, dict):
                out.append({"id": rid, "custom_id": req["custom_id"],
                            "response": {"status_code": 200, "request_id": rid,
                                         "body": payload}, "error": None})
            elif code >= 500:  # a line the service could not process: the error file
                err.append({"id": rid, "custom_id": req["custom_id"], "response": None,
                            "error": {"code": "server_error", "message": "scripted failure"}})
            else:
                out.append({"id": rid, "custom_id": req["custom_id"],
                            "response": {"status_code": code, "request_id": rid,
                                         "body": payload if isinstance(payload, dict)
                                         else {"raw": payload.decode()}}, "error": None})
        ok = sum(1 for o in out if o["response"]["status_code"] == 200)
        b["request_counts"] = {"total": len(lines), "completed": ok,
                               "failed": len(out) + len(err) - ok}
        if out:
            b["output_file_id"] = self._new_file(
                "".join(json.dumps(o) + "\n" for o in out).encode(), "batch_output",
                f"{b['id']}_output.jsonl")["id"]
        if err:
            b["error_file_id"] = self._new_file(
                "".join(json.dumps(o) + "\n" for o in err).encode(), "batch_output",
                f"{b['id']}_error.jsonl")["id"]

    def _batch_get(self, path: str) -> tuple[int, dict[str, Any] | bytes]:
        path = path.split("?")[0].rstrip("/")
        m = re.search(r"/files/([^/]+)/content$", path)
        if m:
            f = self.files.get(m.group(1))
            return (200, f["content"]) if f else (404, {"error": {"message": "no such file"}})
        m = re.search(r"/files/([^/]+)$", path)
        if m and m.group(1) in self.files:
            return 200, {k: v for k, v in self.files[m.group(1)].items() if k != "content"}
        m = re.search(r"/batches/([^/]+)$", path)
        if m and m.group(1) in self.batches:
            with self._lock:
                b = self.batches[m.group(1)]
                self._advance(b)
                return 200, self._public(b)
        if path.endswith("/batches"):
            with self._lock:
                data = [self._public(b) for b in reversed(list(self.batches.values()))]
            return 200, {"object": "list", "data": data, "has_more": False,
                         "first_id": data[0]["id"] if data else None,
                         "last_id": data[-1]["id"] if data else None}
        return 404, {"error": {"message": f"not found: {path}"}}

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
                    code, payload = fake._batch_post(self.path, self.headers, raw, rec)
                    self._send(code, json.dumps(payload).encode())
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
                code, payload, headers = fake._complete(body, rec)
                self._send(code, json.dumps(payload).encode() if isinstance(payload, dict)
                           else payload, headers, trickle=fake._trickles.pop(id(rec), None))

            def do_GET(self) -> None:  # noqa: N802
                rec = RecordedRequest(path=self.path, headers={k.lower(): v for k, v
                                                               in self.headers.items()},
                                      body=None, image_sha256=[], user_text="")
                with fake._lock:
                    fake.requests.append(rec)
                code, payload = fake._batch_get(self.path)
                self._send(code, payload if isinstance(payload, bytes)
                           else json.dumps(payload).encode())

        return Handler
