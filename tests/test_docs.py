"""The documentation checks itself: README.md and docs/*.md have no dead links, every
`dqgen` command they show exists with the options they show (its `--help` parses), and the
distortion table of docs/distortions.md is what `dqgen distortions --markdown` prints."""

from __future__ import annotations

import functools
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from pipeline.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
COMMAND = re.compile(r"^\s*(?:\$\s*)?(?:\S*/)?dqgen(?:\s|$)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown page."""
    out = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
            out.add(slug)
    return out


def _links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))  # links in code are not links
    text = re.sub(r"`[^`\n]*`", "", text)
    return [a or b for a, b in LINK.findall(text)]


def test_there_is_a_docs_folder_and_the_readme_links_it() -> None:
    assert len(PAGES) > 5
    linked = {link.split("#")[0] for link in _links(ROOT / "README.md")}
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in linked, f"README.md does not link docs/{page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve_inside_the_repository(page: Path) -> None:
    for link in _links(page):
        if re.match(r"^[a-z]+://|^mailto:", link):
            continue  # external: not reachable from CI, not checked
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.exists(), f"{page.name}: dead link {link!r}"
        assert ROOT in target.parents or target == ROOT, f"{page.name}: {link!r} leaves the repo"
        if anchor and target.suffix == ".md":
            assert anchor in _anchors(target), f"{page.name}: no heading #{anchor} in {path}"


def _shown_commands() -> list[tuple[str, list[str]]]:
    """(page, argv after `dqgen`) of every dqgen command line in a fenced code block."""
    found = []
    for page in PAGES:
        for block in FENCE.findall(page.read_text(encoding="utf-8")):
            for line in block.splitlines():
                if not COMMAND.match(line):
                    continue
                line = line.split(" #", 1)[0].split("&&")[0].split("|")[0].split(">")[0]
                argv = shlex.split(line)
                while argv and not argv[0].endswith("dqgen"):
                    argv.pop(0)
                found.append((page.name, argv[1:]))
    return found


@functools.cache
def _click_app() -> Any:
    """The app as a click group (typer vendors its own click); building it takes 30 ms."""
    return typer.main.get_command(app)


def _resolve(argv: list[str]) -> tuple[Any, list[str], list[str]]:
    """The click command an argv names, the words that named it, and the rest."""
    command: Any = _click_app()
    path: list[str] = []
    rest = list(argv)
    while hasattr(command, "commands"):  # a group
        while rest and rest[0].startswith("-"):  # root options such as -v
            rest.pop(0)
        if not rest or rest[0] not in command.commands:
            break
        path.append(rest[0])
        command = command.commands[rest.pop(0)]
    return command, path, rest


def test_every_command_the_docs_show_exists_with_its_options() -> None:
    shown = _shown_commands()
    assert len(shown) > 20
    runner = CliRunner()
    helped: set[tuple[str, ...]] = set()
    for page, argv in shown:
        command, path, rest = _resolve(argv)
        assert path or not argv or argv[0] in ("--help", "-v"), (
            f"{page}: `dqgen {' '.join(argv)}`: unknown command {argv[:1]}")
        known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
        known |= {"--help"}
        for word in rest:
            if word.startswith("-") and word != "-":
                name = word.split("=", 1)[0]
                assert name in known, (
                    f"{page}: `dqgen {' '.join(argv)}`: {name} is no option of "
                    f"`dqgen {' '.join(path)}` (known: {', '.join(sorted(known))})")
        if tuple(path) not in helped:
            helped.add(tuple(path))
            res = runner.invoke(app, [*path, "--help"])
            assert res.exit_code == 0, f"{page}: `dqgen {' '.join(path)} --help` failed"


def test_the_distortion_table_of_the_docs_is_the_registry() -> None:
    from pipeline.cli.distort import distortions_markdown

    text = (ROOT / "docs" / "distortions.md").read_text(encoding="utf-8")
    begin, end = ("<!-- BEGIN dqgen distortions --markdown -->",
                  "<!-- END dqgen distortions --markdown -->")
    embedded = text.split(begin, 1)[1].split(end, 1)[0].strip("\n") + "\n"
    assert embedded == distortions_markdown(), (
        "docs/distortions.md is stale: paste `dqgen distortions --markdown` between its markers")


def test_no_page_points_outside_the_repository() -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert "../shared" not in text and "shared/spec" not in text, page.name
