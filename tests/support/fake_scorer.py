"""A loopback "model" for scoring: the FakeOpenAI server answering a level that is a known
function of the image it is sent (by default, of its mean brightness), for tests and
bench/score.py. Scripts (`queue`, `by_image`) still come first, as in FakeOpenAI.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from tests.support.fake_openai import Action, Answer, FakeOpenAI

__all__ = ["FakeScorer", "brightness_level", "image_of"]


def brightness_level(pixels: np.ndarray, levels: int = 7) -> int:
    """1 + round((levels - 1) * mean grey / 255): the level the fake model answers."""
    grey = pixels.astype(float).mean()
    return int(1 + round((levels - 1) * grey / 255.0))


def image_of(body: dict[str, Any] | None) -> np.ndarray | None:
    """Pixels (RGB uint8) of the first image data URL of a chat request body."""
    for msg in (body or {}).get("messages", []):
        content = msg.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if part.get("type") == "image_url":
                m = re.match(r"data:image/\w+;base64,(.*)$", part["image_url"]["url"], re.S)
                if m:
                    with Image.open(io.BytesIO(base64.b64decode(m.group(1)))) as im:
                        return np.asarray(im.convert("RGB"))
    return None


class FakeScorer(FakeOpenAI):
    """FakeOpenAI whose default answer is `level_of(pixels)` for the request's image."""

    def __init__(self, *, level_of: Callable[[np.ndarray], int] = brightness_level,
                 fmt: str = "{level}", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.level_of = level_of
        self.fmt = fmt

    def _next_action(self, images: list[str]) -> Action:
        with self._lock:
            scripted = any(self.by_image.get(s) for s in images) or bool(self.queue)
        if scripted:
            return super()._next_action(images)
        # the request carrying these images was recorded just before; the same image bytes
        # always give the same answer, so any matching record will do under concurrency
        with self._lock:
            body = next((r.body for r in reversed(self.requests)
                         if r.image_sha256 == images), None)
        pixels = image_of(body)
        if pixels is None:
            return Answer(text="no image")
        return Answer(text=self.fmt.format(level=self.level_of(pixels)), completion_tokens=1)
