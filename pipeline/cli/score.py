"""dqgen commands: score (MLLM quality levels, Dog-IQA style) and evaluate (SRCC/PLCC vs MOS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.cli._app import (
    JSON_HELP, app, console, dataset_dir, emit, fail, load_manifest_or_demo, split_list,
    with_overrides,
)

__all__ = ["evaluate_cmd", "metrics_table", "score_cmd"]


@app.command("score")
def score_cmd(
    manifest: Path = typer.Argument(..., help="Build manifest (YAML) with `sources:`."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Dataset folder (default: the manifest's output)."),
    datasets: Optional[list[str]] = typer.Option(
        None, "--datasets", "-d",
        help="Labelled sources to score (repeat or comma-separate; default: scoring.datasets, "
        "else all of `sources`)."),
    references: Optional[bool] = typer.Option(
        None, "--references/--no-references",
        help="Also score the ingested references and write them as a pseudo-labelled source "
        "(default: scoring.references)."),
    samples: Optional[bool] = typer.Option(
        None, "--samples/--no-samples",
        help="Also score the synthetic samples' images A and B (scores/<key>/samples.jsonl; "
        "default: scoring.samples)."),
    responder: Optional[str] = typer.Option(
        None, "--responder", help="openai (default: the manifest's responder.kind)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name (responder.model)."),
    base_url: Optional[str] = typer.Option(
        None, "--base-url", help="OpenAI-compatible server URL (responder.base_url)."),
    regions: Optional[str] = typer.Option(
        None, "--regions", help="none | grid | segments | both (scoring.regions)."),
    levels: Optional[int] = typer.Option(None, "--levels", help="Number of levels (scoring.levels)."),
    global_weight: Optional[float] = typer.Option(
        None, "--global-weight", help="w in final = w*global + (1-w)*regions (scoring.global_weight)."),
    max_cost: Optional[float] = typer.Option(
        None, "--max-cost", help="Budget of this run in USD: no call starts past it (resumable)."),
    concurrency: Optional[int] = typer.Option(
        None, "--concurrency", help="Requests in flight (responder.concurrency)."),
    yes: bool = typer.Option(
        True, "--yes/--ask", help="Start without asking after printing the cost estimate."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Ask a model for a standard-guided quality level of every image of the labelled sources
    (and, on request, of the references or the synthetic samples): the whole image and each
    local region (grid cells and/or SLIC segments), combined by area.

    Prints the estimate first: calls = images x (1 + regions), tokens and USD at
    prompts/prices.yaml. Writes `scores/<key>/<dataset>.jsonl` (every sub-score kept),
    failures to failures/score.jsonl; answers are cached by request hash (a re-run pays
    nothing twice). Then `dqgen evaluate DIR --scores <key>`.
    """
    from pipeline.responders import make_responder
    from pipeline.score.run import REFERENCES, SAMPLES, estimate_cost, labelled_items, \
        reference_items, sample_items, score_items
    from pipeline.store import Store

    m = load_manifest_or_demo(manifest)
    config = with_overrides(m.responder, kind=responder, model=model, base_url=base_url,
                            max_cost_usd=max_cost, concurrency=concurrency)
    cfg = with_overrides(m.scoring, regions=regions, levels=levels, global_weight=global_weight)
    if config.kind != "openai":
        fail(f"scoring asks a model for levels: use --responder openai (got {config.kind!r})")
    store = Store(out.expanduser().resolve() if out is not None else m.output_dir())
    names = split_list(datasets) or cfg.datasets or [s.dataset for s in m.sources]
    if not names and not (references or cfg.references or samples or cfg.samples):
        fail(f"{manifest}: nothing to score: no `sources:`; use --references or --samples")
    try:
        groups = {n: labelled_items(store, n) for n in names}
        if references if references is not None else cfg.references:
            groups[REFERENCES] = reference_items(store)
        if samples if samples is not None else cfg.samples:
            groups[SAMPLES] = sample_items(store, m.kinds(), m.splits())
        rsp = make_responder(config)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    if not any(groups.values()):
        fail(f"nothing to score in {store.root} (no labelled sources or references)")
    n_images = sum(len(v) for v in groups.values())
    try:
        est = estimate_cost(n_images, cfg, config, rsp.model)
    except ValueError as err:
        fail(str(err))
    usd = f"${est['usd']:.4f}" if est["price_known"] else "unknown (no price for this model)"
    console.print(
        f"estimate: {est['images']} images x (1 + up to {est['calls'] // max(1, n_images) - 1} "
        f"regions) = {est['calls']} calls, ~{est['prompt_tokens']} prompt + "
        f"{est['completion_tokens']} completion tokens, {usd} (first asks; cached answers "
        f"cost nothing)", highlight=False)
    if config.max_cost_usd is not None:
        console.print(f"budget: ${config.max_cost_usd:g}"
                      + (" (the estimate exceeds it: the run stops there, resumable)"
                         if est["usd"] and est["usd"] > config.max_cost_usd else ""),
                      highlight=False)
    if not yes and not typer.confirm("start?"):
        raise typer.Exit(1)
    progress = Progress(TextColumn("[bold]{task.description:<16}"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("images"), TimeElapsedColumn(),
                        console=console)
    bars: dict[str, Any] = {}

    def on_progress(dataset: str, done: int, total: int) -> None:
        if dataset not in bars:
            bars[dataset] = progress.add_task(dataset, total=total)
        progress.update(bars[dataset], completed=done, total=total)

    try:
        with progress:
            result = score_items(store, groups, config=config, cfg=cfg, responder=rsp,
                                 progress=on_progress)
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))
    table = Table(title=f"dqgen score {m.name} ({result['key']})", title_justify="left",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for c in ("dataset", "images", "done before", "scored", "file"):
        table.add_column(c)
    for ds, s in result["datasets"].items():
        table.add_row(ds, str(s["images"]), str(s["already_done"]), str(s["scored"]),
                      str(s["scores_path"]))
    emit(table, result, as_json)
    rejected = ", ".join(f"{k} {v}" for k, v in result["rejected"].items()) or "none"
    console.print(f"calls {result['calls']}, cached {result['cached']}, retries "
                  f"{result['retries']}, failed {result['failed']}; rejected answers: "
                  f"{rejected}; tokens {result['prompt_tokens']} + "
                  f"{result['completion_tokens']}, ${result['cost_usd']:.4f}"
                  + ("; [yellow]budget reached[/]" if result["budget_reached"] else ""),
                  highlight=False)
    if REFERENCES in groups:
        from pipeline.score.pseudo import write_pseudo_labels

        m2 = m.model_copy(update={"scoring": cfg})
        try:
            s = write_pseudo_labels(m2, store, result["key"])
        except FileNotFoundError as err:
            fail(str(err))
        console.print(f"pseudo-labels: labels/{s['dataset']}/ ({s['images']} references, "
                      f"pairs {s['pairs']})", highlight=False)
    if result["failed"]:
        console.print(f"[yellow]{result['failed']} image(s) failed[/]: see "
                      f"{store.failures_path('score')}; a re-run retries them", highlight=False)


def metrics_table(doc: dict[str, Any]) -> Table:
    """One row per dataset and split of an evaluation document."""
    table = Table(title=f"dqgen evaluate ({doc['key']})", title_justify="left",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for c in ("dataset", "split", "n", "SRCC [95% CI]", "PLCC", "PLCC fit", "KRCC", "RMSE"):
        table.add_column(c, justify="left" if c in ("dataset", "split") else "right")

    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}"

    for ds, e in doc["datasets"].items():
        if "all" not in e:
            table.add_row(ds, "-", "0", e.get("error", "-"), "", "", "", "")
            continue
        for split, m in [("all", e["all"]), *e.get("splits", {}).items()]:
            if "srcc" not in m:
                table.add_row(ds, split, str(m.get("n", 0)), m.get("error", "-"), "", "", "", "")
                continue
            ci = m.get("ci95", {}).get("srcc")
            srcc = f(m["srcc"]) + (f" [{f(ci[0])}, {f(ci[1])}]" if ci else "")
            table.add_row(ds, split, str(m["n"]), srcc, f(m["plcc"]), f(m["plcc_fitted"]),
                          f(m["krcc"]), f(m["rmse"]))
        if "folds" in e:
            fo = e["folds"]
            table.add_row(ds, f"{fo['evaluated']} folds",
                          "", f"{f(fo['srcc']['mean'])} ± {f(fo['srcc']['std'])}" if fo["srcc"]
                          else "-", "", f"{f(fo['plcc_fitted']['mean'])} ± "
                          f"{f(fo['plcc_fitted']['std'])}" if fo["plcc_fitted"] else "-", "", "")
    return table


@app.command("evaluate")
def evaluate_cmd(
    directory: Path = typer.Argument(..., help="Dataset folder with labels/<dataset>/."),
    scores: str = typer.Option(
        ..., "--scores",
        help="A scoring run's key (scores/<key>/, e.g. openai--gpt-4o), `probe`, or a file: "
        "JSON {image id: score} or JSON Lines with image_id and final/score/prediction."),
    datasets: Optional[list[str]] = typer.Option(
        None, "--datasets", "-d", help="Only these sources (repeat or comma-separate)."),
    n_boot: int = typer.Option(1000, "--bootstrap", min=0,
                               help="Bootstrap resamples for the 95% intervals (0: none)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resamples."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write the scatter plots."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """SRCC, KRCC, PLCC (raw and after the 4-parameter logistic) and RMSE of predicted scores
    against each labelled source's MOS, per dataset and split, with bootstrap 95% intervals
    (mean/std over folds for sources with split repeats).

    Writes `eval/<key>/metrics.json` and `eval/<key>/<dataset>.png` (score vs MOS);
    `dqgen report` then shows them in an "Agreement with human labels" section.
    """
    from pipeline.evaluate import evaluate_scores
    from pipeline.store import Store

    store = Store(dataset_dir(directory).expanduser().resolve())
    try:
        with console.status("evaluating"):
            doc = evaluate_scores(store, scores, seed=seed, n_boot=n_boot,
                                  datasets=split_list(datasets), plots=plots)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    emit(metrics_table(doc), doc, as_json)
    console.print(f"[green]wrote[/] {store.root / 'eval' / doc['key'] / 'metrics.json'}",
                  highlight=False)
