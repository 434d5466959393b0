"""The respond stage: detail answers for every refA/refAB sample, cached, validated, logged.

Reads `samples/<kind>/<split>.jsonl` (SampleRecord) and writes accepted answers to
`responses/<responder key>/<kind>/<split>.jsonl` (ResponseRecord, sample order), failed
samples to `failures/respond.jsonl` (FailureRecord), and paid answers to the request-hash
cache `cache/responses/<hh>/<hash>.json`. The responder key keeps responders and models
apart ("template", "replay", "openai--gpt-4o"), so their answers never mix.

For each sample still missing (resume), and for each ask (the first, then up to
`max_reasks` re-asks after a validation rejection):

1. build the request from the versioned instruction (prompts/instructions/);
2. look its hash up in the cache; a hit costs nothing (a re-run, or another split with the
   same request, makes zero calls);
3. otherwise (paid responders) reserve the worst-case cost against the budget, wait for
   the rate limiter (requests and tokens per minute), call with the one retry policy
   (tenacity: exponential backoff with jitter, Retry-After honoured and capped; retried:
   429, 5xx, 408/409, timeouts, connection errors, malformed bodies; not retried:
   400/401/403/404, content-policy refusals), and write the reply to the cache at once
   (a killed run loses at most the calls in flight);
4. validate (pipeline.validate); accepted answers are appended to the responses file.

With `responder.mode: batch` step 3 is the OpenAI Batch API instead of a call: requests
with no cached answer are submitted in batches (half price), and their answers, once
collected, enter the same cache and go through the same steps (pipeline.respond.batch,
docs/batch.md).

A sample that exhausts its attempts or re-asks becomes a FailureRecord (never the key).
When the budget (`max_cost_usd`) would be exceeded no new call starts, in-flight calls
finish, and the summary says `budget_reached`; a re-run continues where it stopped.
`retry_failures(root)` re-runs exactly the samples of open failure records; for those
samples a cached answer that fails validation is not replayed but asked anew (the new
reply replaces the cache entry), while cached answers that pass are replayed, so an
accepted answer is never paid twice and a plain re-run still makes zero calls.

Prompt versions never mix: a sample counts as answered only by a record of the current
`prompt_version`. Records of another version are set aside (moved, not deleted) to
`responses/<key>/superseded/<kind>/<split>.jsonl` when a split is run, and their samples
are asked again with the current instruction (through the cache: a request already paid
for costs nothing). The key names the model, not the server (base_url): the same model
name served elsewhere shares the folder and the cache; a base_url change is logged.

Every run (the build's stage, `dqgen respond`, `retry-failures`, each `respond_split`
call) appends its summary as one JSON line to `logs/respond/<key>.jsonl` (`log_run`;
read back with `read_run_log`), which pipeline.report totals over all runs. In a summary
`rejected` counts rejections of answers got in that run; answers replayed from the cache
that fail again are counted in `rejected_cached` (they were counted when first paid).

The package, by responsibility: `cost` (prices, budget), `cache` (the request-hash cache),
`backoff` (the retry formula), `locks` (file locks, torn-line repair), `files` (responses
files: superseded prompt versions, final order), `runlog` (logs/respond/), `online` (the
run of a split, one call per request), `run` (respond_split, respond, stage_respond) and
`retry` (retry_failures), `batch` (the Batch API mode: docs/batch.md) and `structured`
(response_format schemas). Every name is re-exported here: import from `pipeline.respond`.
"""

from __future__ import annotations

from pipeline.respond.backoff import backoff_wait
from pipeline.respond.batch import BatchQueue, batch_hashes, batch_state_path, read_batches
from pipeline.respond.cache import ResponseCache
from pipeline.respond.common import STAGE, ProgressFn, _scrub
from pipeline.respond.cost import Budget, BudgetStop, batch_price_for, cost_usd, price_for
from pipeline.respond.files import finalize, set_aside_other_versions, superseded_path
from pipeline.respond.locks import file_lock, repair
from pipeline.respond.online import _Run, _SplitResult
from pipeline.respond.retry import retry_failures
from pipeline.respond.run import (ResponderAuthError, _arun, _combine, _resolve, _run_sync,
                                  respond, respond_split, stage_respond)
from pipeline.respond.structured import COMPARISON_FORMAT, json_schema_format, parse_structured
from pipeline.respond.runlog import (RUN_LOG, log_run, read_run_log, repair_run_log,
                                     run_log_path, safe_url)
from pipeline.responders.prompting import load_instruction  # the patch point online.py reads

# the names of the single-module version (private helpers included), unchanged
_BudgetStop = BudgetStop
_file_lock = file_lock
_repair = repair
_finalize = finalize
_set_aside_other_versions = set_aside_other_versions
_safe_url = safe_url

__all__ = [
    "COMPARISON_FORMAT",
    "STAGE",
    "BatchQueue",
    "Budget",
    "ProgressFn",
    "RUN_LOG",
    "ResponderAuthError",
    "ResponseCache",
    "backoff_wait",
    "batch_hashes",
    "batch_price_for",
    "batch_state_path",
    "cost_usd",
    "json_schema_format",
    "log_run",
    "parse_structured",
    "price_for",
    "read_batches",
    "read_run_log",
    "repair_run_log",
    "respond",
    "respond_split",
    "retry_failures",
    "run_log_path",
    "stage_respond",
    "superseded_path",
]
