"""The dataset store: atomic writes give files the process umask's mode, not mkstemp's 0600."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.store import (
    FILE_MODE,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_jsonl,
    read_jsonl,
)

REPO = Path(__file__).resolve().parents[2]

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@posix_only
def test_atomic_writes_match_a_plain_open(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what an ordinary open() creates under this process's umask
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01")
    atomic_write_json(tmp_path / "sub" / "b.json", {"k": 1})
    assert atomic_write_jsonl(tmp_path / "c.jsonl", [{"i": 1}, {"i": 2}]) == 2
    for name in ("a.bin", "sub/b.json", "c.jsonl"):
        assert _mode(tmp_path / name) == _mode(plain) == FILE_MODE, name
    assert json.loads((tmp_path / "sub" / "b.json").read_text()) == {"k": 1}
    assert [r["i"] for r in read_jsonl(tmp_path / "c.jsonl")] == [1, 2]
    assert not list(tmp_path.rglob(".*.tmp"))  # no temp file left behind


@posix_only
def test_atomic_writes_follow_the_umask(tmp_path: Path) -> None:
    # The umask is read once, at import: each umask needs a fresh import of the module.
    script = textwrap.dedent("""
        import importlib, json, os, stat, sys
        from pathlib import Path
        out, modes = Path(sys.argv[1]), {}
        for mask in (0o022, 0o027, 0o002, 0o077):
            os.umask(mask)
            import pipeline.store as store
            store = importlib.reload(store)
            d = out / oct(mask)
            store.atomic_write_bytes(d / "img.png", b"png")
            store.atomic_write_json(d / "x.json", [1])
            store.atomic_write_jsonl(d / "x.jsonl", [1])
            with open(d / "plain", "w"):
                pass
            modes[oct(mask)] = {p.name: stat.S_IMODE(p.stat().st_mode)
                                for p in d.iterdir()} | {"FILE_MODE": store.FILE_MODE}
        print(json.dumps(modes))
    """)
    res = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=120, check=True)
    modes = json.loads(res.stdout)
    for mask in (0o022, 0o027, 0o002, 0o077):
        want = 0o666 & ~mask
        got = modes[oct(mask)]
        assert got == {"img.png": want, "x.json": want, "x.jsonl": want, "plain": want,
                       "FILE_MODE": want}, (oct(mask), got)


def test_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    class Boom(Exception):
        pass

    target = tmp_path / "x.bin"
    target.write_bytes(b"old")

    def explode(*_a: object, **_k: object) -> None:
        raise Boom

    with pytest.raises(Boom), pytest.MonkeyPatch.context() as mp:
        mp.setattr("pipeline.store.os.replace", explode)
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]
