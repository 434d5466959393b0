"""The OpenAI-compatible responder: the `openai` SDK against OpenAI, Azure OpenAI (v1
routes), vLLM, Ollama, LM Studio or any server speaking POST /v1/chat/completions.

- `base_url`: the manifest's `responder.base_url`, else env OPENAI_BASE_URL, else OpenAI.
- key: only from env OPENAI_API_KEY (never from manifests or files); local servers that
  need none accept any value. The key never appears in our messages, records or logs:
  error texts are scrubbed of it (some servers echo a masked key on 401).
- The SDK's own retries are off (`max_retries=0`): `pipeline.respond` owns the one retry
  policy; this module only classifies errors (`ResponderError.retryable`, `retry_after`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import os
import re
from typing import Any

from pipeline.manifest import ResponderConfig
from pipeline.records import Usage
from pipeline.responders.base import (
    Reply,
    ResponderError,
    ResponseRequest,
    data_url,
    responder_key,
)

__all__ = ["API_KEY_ENV", "BASE_URL_ENV", "MODEL_ENV", "OpenAIResponder", "parse_retry_after"]

API_KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"
# No default model: a local server's answers must never be filed and priced as another
# model's. The name comes from the manifest, the --model flag, or this variable.
MODEL_ENV = "OPENAI_MODEL"

# 408/409/429 and 5xx are transient (the same set the SDK's own retry loop uses).
_RETRY_STATUS = {408, 409, 429}
_KIND_BY_STATUS = {400: "bad_request", 401: "auth", 403: "permission", 404: "not_found",
                   408: "timeout", 409: "conflict", 413: "too_large", 422: "unprocessable",
                   429: "rate_limited"}
_SK = re.compile(r"sk-[A-Za-z0-9_\-*]{6,}")


def parse_retry_after(headers: Any, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    now = now or dt.datetime.now(dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


class OpenAIResponder:
    """Chat-completions calls through `openai.AsyncOpenAI` (one client per run)."""

    name = "openai"
    paid = True
    deterministic = False

    def __init__(self, config: ResponderConfig) -> None:
        """Check settings; the client itself is made inside the running event loop.

        Raises:
            ValueError: OPENAI_API_KEY is not set (the message names the variable), or no
                model name is given (the message names the three places to give it).
            ImportError: the openai package is missing (says what to install).
        """
        try:
            import openai  # noqa: F401  (lazy: only this responder needs the SDK)
        except ImportError as err:  # pragma: no cover - openai is a core dependency
            msg = "the openai responder needs the `openai` package: pip install 'openai>=1.40'"
            raise ImportError(msg) from err
        key = os.environ.get(API_KEY_ENV, "")
        if not key:
            msg = (f"the openai responder needs an API key in the environment variable "
                   f"{API_KEY_ENV} (keys are never read from manifests or files; local "
                   f"servers such as vLLM or Ollama accept any value, e.g. {API_KEY_ENV}=local)")
            raise ValueError(msg)
        self._key = key
        self.config = config
        model = config.model or os.environ.get(MODEL_ENV, "").strip()
        if not model:
            msg = ("the openai responder needs a model name: set responder.model in the "
                   f"manifest, pass --model to dqgen, or set the environment variable "
                   f"{MODEL_ENV} (there is no default: a local server's answers would be "
                   "filed and priced as another model's)")
            raise ValueError(msg)
        self.model = model
        self.base_url = config.base_url or os.environ.get(BASE_URL_ENV) or None
        self.key = responder_key(self.name, self.model)
        self._client: Any = None

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIResponder(model={self.model!r}, base_url={self.base_url!r})"

    def _scrub(self, text: str) -> str:
        if self._key:
            text = text.replace(self._key, "***")
        return _SK.sub("sk-***", text)

    def _get_client(self) -> Any:
        if self._client is None:
            import openai

            self._client = openai.AsyncOpenAI(
                api_key=self._key, base_url=self.base_url, max_retries=0,
                timeout=self.config.timeout_s,
                default_query=dict(self.config.default_query) or None,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def arespond(self, request: ResponseRequest) -> Reply:
        import openai

        try:
            messages = request.messages(lambda img: data_url(img.path))
        except OSError as err:
            msg = f"sample {request.sample.sample_id}: image not readable: {err}"
            raise ResponderError(msg, kind="missing_image") from None
        client = self._get_client()
        try:
            # timeout_s bounds the whole request (connect, send, wait, read the whole
            # body): the SDK's timeout bounds each read only, so a server trickling its
            # body would hold a request open for as long as it likes.
            completion = await asyncio.wait_for(client.chat.completions.create(
                model=self.model, messages=messages, max_tokens=request.max_tokens,
                temperature=request.temperature, extra_body=request.extra or None,
                **({"response_format": request.response_format}
                   if request.response_format is not None else {}),
            ), timeout=self.config.timeout_s)
        except (openai.APITimeoutError, asyncio.TimeoutError):
            raise ResponderError(f"request timed out after {self.config.timeout_s:g} s",
                                 kind="timeout", retryable=True) from None
        except openai.APIConnectionError as err:
            raise ResponderError(self._scrub(f"connection error: {err}"), kind="connection",
                                 retryable=True) from None
        except openai.APIStatusError as err:
            raise self._status_error(err) from None
        except openai.APIResponseValidationError as err:
            raise ResponderError(self._scrub(f"malformed response body: {err}"),
                                 kind="malformed", status=err.status_code, retryable=True,
                                 raw_output=_excerpt(err.body)) from None
        except openai.ContentFilterFinishReasonError:
            raise ResponderError("the answer was stopped by the content filter",
                                 kind="content_policy") from None
        except (ValueError, TypeError) as err:  # undecodable JSON body, wrong shapes
            raise ResponderError(self._scrub(f"malformed response body: {err}"),
                                 kind="malformed", retryable=True) from None
        return self._reply(completion, request)

    # the Batch API (pipeline.respond.batch) ---------------------------------------------
    def batch_client(self) -> Any:
        """The AsyncOpenAI client of this run (files and batches go through it too)."""
        return self._get_client()

    def batch_line(self, request: ResponseRequest, custom_id: str) -> dict[str, Any]:
        """One line of a batch input file: the same body `arespond` sends."""
        body: dict[str, Any] = {
            "model": self.model, "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "messages": request.messages(lambda img: data_url(img.path)),
            **(request.extra or {})}
        if request.response_format is not None:
            body["response_format"] = request.response_format
        return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                "body": body}

    def batch_reply(self, body: Any, estimated_prompt_tokens: int) -> Reply:
        """The Reply of one batch output line's body (a chat completion as JSON), checked
        like an online answer; raises ResponderError as `arespond` would."""
        from openai.types.chat import ChatCompletion

        try:
            completion = ChatCompletion.model_validate(body)
        except (ValueError, TypeError) as err:
            raise ResponderError(self._scrub(f"malformed batch result: {err}"),
                                 kind="malformed", retryable=True,
                                 raw_output=_excerpt(body)) from None
        reply = self._reply(completion, None)
        if reply.usage_estimated or completion.usage is None:
            reply = Reply(text=reply.text, model=reply.model, finish_reason=reply.finish_reason,
                          usage=Usage(prompt_tokens=estimated_prompt_tokens,
                                      completion_tokens=len(reply.text) // 3 + 1),
                          usage_estimated=True)
        return Reply(text=reply.text, usage=reply.usage, model=reply.model,
                     finish_reason=reply.finish_reason,
                     usage_estimated=reply.usage_estimated, mode="batch")

    def batch_error(self, status: int | None, body: Any) -> ResponderError:
        """A failed batch line (its status and error body) classified like an online error."""
        inner = body.get("error", body) if isinstance(body, dict) else {}
        inner = inner if isinstance(inner, dict) else {}
        code = str(inner.get("code") or "")
        message = self._scrub(f"batch line: HTTP {status}: {inner.get('message') or code}"
                              if status else f"batch line: {inner.get('message') or code}")
        if code in ("content_policy_violation", "content_filter") or "content_policy" in code:
            return ResponderError(message, kind="content_policy", status=status)
        if status is None:  # the error file: the service could not process the line
            return ResponderError(message, kind="batch_error", retryable=True)
        retryable = status in _RETRY_STATUS or status >= 500
        kind = _KIND_BY_STATUS.get(status, "server_error" if status >= 500 else "http_error")
        return ResponderError(message, kind=kind, status=status, retryable=retryable)

    def _status_error(self, err: Any) -> ResponderError:
        status = int(err.status_code)
        body = err.body if isinstance(err.body, dict) else {}
        inner = body.get("error", body) if isinstance(body, dict) else {}
        code = str((inner or {}).get("code") or err.code or "")
        message = self._scrub(f"HTTP {status}: {getattr(err, 'message', '') or str(err)}")
        headers = getattr(getattr(err, "response", None), "headers", None)
        retry_after = parse_retry_after(headers)
        if code in ("content_policy_violation", "content_filter") or "content_policy" in code:
            return ResponderError(message, kind="content_policy", status=status)
        if status == 429 and code == "insufficient_quota":  # out of credit: waiting won't help
            return ResponderError(message, kind="quota", status=status)
        retryable = status in _RETRY_STATUS or status >= 500
        kind = _KIND_BY_STATUS.get(status, "server_error" if status >= 500 else "http_error")
        return ResponderError(message, kind=kind, status=status, retryable=retryable,
                              retry_after=retry_after)

    def _reply(self, completion: Any, request: ResponseRequest | None) -> Reply:
        choices = getattr(completion, "choices", None)
        if isinstance(completion, (str, bytes)) or not choices:
            raise ResponderError("malformed response body: no choices", kind="malformed",
                                 retryable=True, raw_output=_excerpt(completion))
        choice = choices[0]
        finish = getattr(choice, "finish_reason", None)
        if finish == "content_filter":
            raise ResponderError("the answer was stopped by the content filter",
                                 kind="content_policy")
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None)
        if not isinstance(text, str):
            refusal = getattr(message, "refusal", None)
            if isinstance(refusal, str) and refusal:
                return Reply(text=refusal, usage=self._usage(completion, request, refusal),
                             model=str(getattr(completion, "model", "") or self.model),
                             finish_reason=finish)
            raise ResponderError("malformed response body: no message content",
                                 kind="malformed", retryable=True, raw_output=_excerpt(completion))
        usage = self._usage(completion, request, text)
        return Reply(text=text.strip(), usage=usage,
                     model=str(getattr(completion, "model", "") or self.model),
                     finish_reason=finish,
                     usage_estimated=getattr(completion, "usage", None) is None)

    def _usage(self, completion: Any, request: ResponseRequest | None, text: str) -> Usage:
        u = getattr(completion, "usage", None)
        if u is not None and getattr(u, "prompt_tokens", None) is not None:
            return Usage(prompt_tokens=int(u.prompt_tokens or 0),
                         completion_tokens=int(getattr(u, "completion_tokens", 0) or 0))
        # the server sent no usage: estimate, so cost and limits stay conservative
        prompt = (request.estimated_prompt_tokens(self.config.image_tokens)
                  if request is not None else 0)  # batch_reply fills it in
        return Usage(prompt_tokens=prompt, completion_tokens=len(text) // 3 + 1)


def _excerpt(obj: Any, limit: int = 500) -> str | None:
    if obj is None:
        return None
    text = obj if isinstance(obj, str) else repr(obj)
    text = _SK.sub("sk-***", text)
    return text[:limit]
