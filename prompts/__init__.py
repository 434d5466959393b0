"""Prompt and question/answer templates as versioned data files, and their small loader.

Files live under this package as YAML (`<area>/<name>.v<N>.yaml` or plain `<name>.yaml`);
text fields are Jinja2 templates rendered with StrictUndefined, so a missing variable
raises instead of producing a silently wrong prompt. To change a prompt, add a new version
file: old versions stay so caches and old datasets still make sense.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import jinja2
import yaml

__all__ = ["load_yaml", "render", "resource_text"]

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                          autoescape=False)


def resource_text(relpath: str) -> str:
    """Text of a data file inside the `prompts` package, e.g. 'synonyms.yaml'."""
    node = resources.files(__name__)
    for part in relpath.split("/"):
        node = node / part
    if not node.is_file():
        msg = f"prompt file not found: prompts/{relpath}"
        raise FileNotFoundError(msg)
    return node.read_text(encoding="utf-8")


@functools.lru_cache(maxsize=None)
def _load_cached(relpath: str) -> Any:
    return yaml.safe_load(resource_text(relpath))


def load_yaml(relpath: str) -> Any:
    """Parsed YAML data file of the `prompts` package (cached; treat as read-only)."""
    return _load_cached(relpath)


@functools.lru_cache(maxsize=1024)
def _compile(template: str) -> jinja2.Template:
    return _ENV.from_string(template)


def render(template: str, **variables: Any) -> str:
    """Render a Jinja2 template string; a missing variable raises jinja2.UndefinedError."""
    return _compile(template).render(**variables).strip()
