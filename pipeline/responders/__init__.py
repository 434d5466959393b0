"""Responders behind one small interface (see base.py) and the factory that picks one.

| kind | class | use |
|---|---|---|
| template | TemplateResponder | offline, deterministic; the demo default and what tests use |
| openai | OpenAIResponder | any OpenAI-compatible server (OpenAI, Azure, vLLM, Ollama) |
| replay | ReplayResponder | answers from an existing responses file |
"""

from __future__ import annotations

from pathlib import Path

from pipeline.manifest import Manifest, ResponderConfig
from pipeline.responders.base import (
    ImageInput,
    Reply,
    Responder,
    ResponderError,
    ResponseRequest,
    responder_key,
)

__all__ = ["ImageInput", "Reply", "Responder", "ResponderError", "ResponseRequest",
           "make_responder", "responder_key"]


def make_responder(config: ResponderConfig, *, manifest: Manifest | None = None,
                   base_dir: Path | str | None = None) -> Responder:
    """Build the responder a `ResponderConfig` names.

    Args:
        config: the manifest's `responder` section (possibly with CLI overrides).
        manifest: resolves a relative `replay_file` against the manifest's folder.
        base_dir: folder for relative paths when there is no manifest.

    Raises:
        ValueError: missing OPENAI_API_KEY (openai), missing `replay_file` (replay).
        FileNotFoundError: the replay file does not exist.
    """
    if config.kind == "template":
        from pipeline.responders.template import TemplateResponder

        return TemplateResponder()
    if config.kind == "openai":
        from pipeline.responders.openai import OpenAIResponder

        return OpenAIResponder(config)
    if config.kind == "replay":
        from pipeline.responders.replay import ReplayResponder

        if not config.replay_file:
            msg = "responder.kind=replay needs responder.replay_file (a responses file)"
            raise ValueError(msg)
        if manifest is not None:
            path = manifest.resolve(config.replay_file)
        else:
            path = Path(base_dir or ".") / config.replay_file
        return ReplayResponder(path)
    msg = f"unknown responder kind {config.kind!r}; known: template, openai, replay"
    raise ValueError(msg)
