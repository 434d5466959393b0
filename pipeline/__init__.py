"""dqgen pipeline: the stages (ingest, plan, synthesise, judge, respond, assemble, convert,
export, report) as plain functions over pydantic records, the dataset store and the CLI.

Nothing here imports Prefect; `flows/` wraps these functions.
"""

__version__ = "0.1.0"
