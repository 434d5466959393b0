"""Structured outputs: a per-request `response_format` (OpenAI json_schema) and the parsing
of answers given in it.

A request may carry a schema (`ResponseRequest.response_format`); the answer is then a
JSON object whose `text` field is the answer validated and stored as usual (so the
responses files look the same as with the text protocol) and whose other fields (a
comparison's `verdict`, a scoring mode's level) are read, not searched for in the text.
`COMPARISON_FORMAT` is the schema of pair answers; other modes build theirs with
`json_schema_format`. A server that refuses `response_format` (HTTP 400 naming it) is
detected with `refuses_format`; the run then falls back to the text protocol, once, with a
warning (pipeline.respond.online).
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.responders import ResponderError

__all__ = ["COMPARISON_FORMAT", "json_schema_format", "parse_structured", "refuses_format"]


def json_schema_format(name: str, properties: dict[str, Any],
                       required: list[str] | None = None) -> dict[str, Any]:
    """A strict `response_format` of type json_schema over an object with `properties`."""
    return {"type": "json_schema", "json_schema": {
        "name": name, "strict": True,
        "schema": {"type": "object", "properties": properties,
                   "required": required if required is not None else list(properties),
                   "additionalProperties": False}}}


# pairs: which image is better, and the answer text (validated like a text answer)
COMPARISON_FORMAT = json_schema_format("comparison", {
    "verdict": {"type": "string", "enum": ["A", "B"]},
    "text": {"type": "string"},
})


def parse_structured(text: str, response_format: dict[str, Any]) -> dict[str, Any] | None:
    """The answer's JSON object when it follows the schema's required fields (enums
    checked), else None (the caller then reads the reply as plain text)."""
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    schema = response_format.get("json_schema", {}).get("schema", {})
    if not isinstance(obj, dict):
        return None
    for name in schema.get("required", []):
        if name not in obj:
            return None
    for name, spec in schema.get("properties", {}).items():
        if name in obj and "enum" in spec and obj[name] not in spec["enum"]:
            return None
        if name in obj and spec.get("type") == "string" and not isinstance(obj[name], str):
            return None
    return obj


def refuses_format(err: ResponderError) -> bool:
    """The server refused the request because of `response_format` (not supported)."""
    text = str(err).lower()
    return err.status in (400, 422) and ("response_format" in text or "json_schema" in text
                                         or "unsupported_parameter" in text)
