"""`python -m pipeline.cli`: the `dqgen` command."""

from pipeline.cli import main

main()
