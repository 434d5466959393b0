"""The dqgen application itself: the root options every command shares."""

from __future__ import annotations


def test_console_quiets_prefect_unless_verbose(monkeypatch) -> None:
    """Prefect's per-run console lines are off by default (the UI still gets them): the
    root callback sets the console handler's level before any command imports Prefect."""
    import os

    from typer.testing import CliRunner

    from pipeline.cli import app

    var = "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"
    runner = CliRunner()
    for argv, expected in ((["version"], "WARNING"), (["-v", "version"], None),
                           (["serve", "--help"], None)):
        monkeypatch.delenv(var, raising=False)
        result = runner.invoke(app, argv)
        assert result.exit_code == 0, result.output
        assert os.environ.get(var) == expected, argv
    monkeypatch.setenv(var, "DEBUG")  # the user's choice wins
    assert runner.invoke(app, ["version"]).exit_code == 0
    assert os.environ[var] == "DEBUG"
