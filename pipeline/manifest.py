"""Build manifests: YAML files validated by pydantic, with errors that name the field.

A manifest says where references come from, how many samples of each kind and split to
build, the seed, the resize rule, the judge, the responder and the output folder. Relative
paths are resolved against the manifest file's folder, except `output`, which is resolved
against the current working directory (so `dqgen build data_manifest/demo.yaml` writes
`./out/demo`, as a user expects from a build command). `@skimage` as a reference root is
the folder of photos that ship inside scikit-image's wheel (the offline demo).

Reference paths listed in a manifest (`files`, `splits`, the entries of a split file) are
relative to `references.root` and may not leave it: absolute paths and `..` are refused
here (also in `references.glob`); symlinks that point out of the root are refused by
ingest. Input files a stage needs (`judge.predictions`) must exist when the manifest is
loaded, so a typo fails before any work is done.

Each stage owns its sub-model here (ReferencesConfig: ingest; counts/clean_probability:
plan; JudgeConfig: judge; ResponderConfig: respond; TasksConfig: assemble/export).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipeline.records import KINDS
from pipeline.yamlio import YamlError, load_yaml

__all__ = [
    "MAX_COUNT",
    "DeqaSourceConfig",
    "ExportOptions",
    "IspConfig",
    "JudgeConfig",
    "LabelSourceConfig",
    "LabelTasksConfig",
    "Manifest",
    "ManifestError",
    "ProbeSettings",
    "ReferencesConfig",
    "ResizeConfig",
    "ResponderConfig",
    "ScoringConfig",
    "TasksConfig",
    "check_manifest_files",
    "check_relative_path",
    "load_demo_manifest",
    "load_manifest",
]


class ManifestError(ValueError):
    """A manifest that cannot be read or does not validate; the message names file and field."""


# Documented cap on one count (per kind and split): a typo such as 100000000000 is
# refused at once instead of planning until memory runs out.
MAX_COUNT = 10_000_000


def _options(annotation: Any) -> tuple[Any, ...]:
    return get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)


def _bool_for_number(annotation: Any, value: Any, where: str = "") -> str | None:
    """Where `value` holds a YAML boolean that `annotation` wants as a number ("" for the
    value itself, ".key" inside a mapping), or None."""
    options = _options(annotation)
    if isinstance(value, bool):
        number = bool not in options and any(o in (int, float) for o in options)
        return where if number else None
    if isinstance(value, dict):
        for o in options:
            if get_origin(o) is dict and len(get_args(o)) == 2:
                for k, v in value.items():
                    found = _bool_for_number(get_args(o)[1], v, f"{where}.{k}")
                    if found is not None:
                        return found
    return None


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, v: Any, info: ValidationInfo) -> Any:
        # pydantic takes `train: true` as 1: a boolean where a number belongs is a typo
        field = cls.model_fields.get(info.field_name or "")
        where = None if field is None else _bool_for_number(field.annotation, v)
        if where is not None:
            at = f"{where.lstrip('.')}: " if where else ""
            msg = f"{at}a number is needed, got a boolean (YAML true/false/yes/no)"
            raise ValueError(msg)
        return v


def check_relative_path(path: str, *, field: str) -> str:
    """Refuse a listed reference path that could leave the source root (absolute, `..`)."""
    if not isinstance(path, str) or not path.strip():
        msg = f"{field}: empty path"
        raise ValueError(msg)
    posix, win = PurePosixPath(path), PureWindowsPath(path)
    if posix.is_absolute() or win.drive or win.root:  # C:x, C:\\x and \\x all leave the root
        msg = f"{field}: {path!r} is absolute; list paths relative to references.root"
        raise ValueError(msg)
    if ".." in posix.parts or ".." in win.parts:
        msg = f"{field}: {path!r} leaves references.root ('..' is not allowed)"
        raise ValueError(msg)
    return path


class ReferencesConfig(_Config):
    """Where reference photos come from (read by the ingest stage).

    Exactly one way to list files: `glob` over `root` (default; matched recursively with
    `**`, hidden files skipped), `files` (list of paths relative to `root`), `split_file`
    (a JSON or YAML file `{"train": [names], "test": [names]}` as the original build used;
    relative to the manifest's folder) or `splits` (the same mapping written inline).
    `exclude` drops names (a relative path or a bare file name). Without a split mapping,
    each reference's split is decided by a stable hash of its id: `test` when the hash,
    read as a fraction in [0, 1), is below `test_fraction` (adding files never moves an
    existing reference to the other split). `max_pixels` is the decompression-bomb guard:
    a file whose header declares more pixels is refused before decoding.
    """

    root: str = "@skimage"
    glob: str = "*"
    files: list[str] | None = None
    split_file: str | None = None
    splits: dict[str, list[str]] | None = None
    exclude: list[str] = []
    test_fraction: float = Field(0.2, ge=0.0, le=1.0)
    max_pixels: int = Field(89_478_485, gt=0)  # Pillow's decompression-bomb default

    @field_validator("glob")
    @classmethod
    def _glob_inside_root(cls, v: str) -> str:
        # pathlib would raise NotImplementedError on an absolute pattern, and `..` would
        # match files outside the root: the rule of every listed path applies to globs too.
        if not v.strip():
            msg = "empty pattern; use '*' (top folder) or '**/*' (recursive)"
            raise ValueError(msg)
        return check_relative_path(v, field="glob")

    @field_validator("files")
    @classmethod
    def _files_inside_root(cls, v: list[str] | None) -> list[str] | None:
        for i, path in enumerate(v or []):
            check_relative_path(path, field=f"files[{i}]")
        return v

    @field_validator("splits")
    @classmethod
    def _split_paths_inside_root(
        cls, v: dict[str, list[str]] | None
    ) -> dict[str, list[str]] | None:
        for split, paths in (v or {}).items():
            for i, path in enumerate(paths):
                check_relative_path(path, field=f"splits.{split}[{i}]")
        return v

    @model_validator(mode="after")
    def _one_listing(self) -> ReferencesConfig:
        given = [k for k in ("files", "split_file", "splits") if getattr(self, k) is not None]
        if len(given) > 1:
            msg = f"give only one of files, split_file, splits; got {', '.join(given)}"
            raise ValueError(msg)
        return self


class ResizeConfig(_Config):
    short_side: int = Field(224, ge=32)  # scaled down (bicubic) when the short side is larger
    filter: Literal["bicubic"] = "bicubic"


class JudgeConfig(_Config):
    """Which of A and B is better (refAB kinds).

    `fr_score`: the built-in full-reference score (see pipeline/judge.py); `predictions`: a
    JSON or JSON Lines file of verdicts keyed by sample id (`predictions`, relative to the
    manifest's folder).
    """

    kind: Literal["fr_score", "predictions"] = "fr_score"
    predictions: str | None = None  # predictions file for kind=predictions

    @model_validator(mode="after")
    def _predictions_file(self) -> JudgeConfig:
        if self.kind == "predictions" and not self.predictions:
            msg = "kind 'predictions' needs a predictions file (judge.predictions)"
            raise ValueError(msg)
        return self


class ResponderConfig(_Config):
    """Who writes the detail answers, and how the respond stage calls it.

    `kind`: template (offline, deterministic; the demo default), openai (any
    OpenAI-compatible server: `base_url` or env OPENAI_BASE_URL, key only from env
    OPENAI_API_KEY), replay (answers from `replay_file`). The other fields tune the respond
    stage (retries, rate limits, validation re-asks, budget); see README "MLLM responses".
    """

    kind: Literal["template", "openai", "replay"] = "template"
    model: str | None = None  # openai: required here, by --model, or by OPENAI_MODEL
    base_url: str | None = None  # openai: e.g. http://localhost:8000/v1 (vLLM); else env
    replay_file: str | None = None
    extra: dict[str, Any] = {}
    prompt_version: str = "v1"  # prompts/instructions/<kind>.<version>.yaml
    default_query: dict[str, str] = {}  # e.g. {"api-version": "..."} for older Azure routes
    image_detail: Literal["auto", "low", "high"] = "auto"
    timeout_s: float = Field(60.0, gt=0)  # whole HTTP request: connect to last body byte
    max_attempts: int = Field(6, ge=1)  # per request, first try included
    backoff_initial_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    retry_after_max_s: float = Field(120.0, ge=0)  # cap on a server's Retry-After
    concurrency: int = Field(16, ge=1)  # requests in flight
    requests_per_minute: float | None = Field(500.0, gt=0)  # None: no limit
    tokens_per_minute: float | None = Field(None, gt=0)
    image_tokens: int = Field(765, ge=0)  # conservative prompt-token estimate per image
    max_reasks: int = Field(2, ge=0)  # new answers asked after a validation rejection
    word_limit_tolerance: float = Field(0.2, ge=0)  # reject answers > limit * (1 + this)
    max_cost_usd: float | None = Field(None, ge=0)  # budget of one run; None: no cap
    price_input_per_1m: float | None = Field(None, ge=0)  # override prompts/prices.yaml
    price_output_per_1m: float | None = Field(None, ge=0)
    # how requests travel (docs/batch.md): online (one call each) or batch (the OpenAI
    # Batch API: half price, results within completion_window); cache, validation,
    # budget and failures are the same in both
    mode: Literal["online", "batch"] = "online"
    batch_reasks: Literal["batch", "online"] = "batch"  # where re-asks after a rejection go
    batch_price_factor: float = Field(0.5, ge=0)  # batch price = online x this, unless
    # prompts/prices.yaml gives batch_input/batch_output for the model
    batch_max_requests: int = Field(50_000, ge=1)  # per batch input file (OpenAI: 50,000)
    batch_max_bytes: int = Field(190_000_000, ge=1)  # per input file (OpenAI: 200 MB)
    batch_max_tokens: int | None = Field(None, ge=1)  # estimated prompt tokens per batch
    batch_completion_window: str = "24h"
    batch_poll_s: float = Field(30.0, ge=0)  # first wait between polls (--wait, builds)
    batch_poll_max_s: float = Field(600.0, ge=0)  # the wait grows x1.5 up to this
    structured_output: bool = False  # pairs: response_format json_schema {verdict, text}


EXPORT_FORMATS: tuple[str, ...] = ("depictqa", "jsonl", "llava", "llava-onevision", "sharegpt",
                                    "parquet", "deqa-score", "qinsight")
ExportFormat = Literal["depictqa", "jsonl", "llava", "llava-onevision", "sharegpt", "parquet",
                       "deqa-score", "qinsight"]


class DeqaSourceConfig(_Config):
    """DeQA-Score soft-label settings of one human-labelled source (docs/exports.md).

    `density`: Gaussian `pdf` at the five levels or `cdf` over unit bins; `thre_std` /
    `thre_diff`: the two-level ("binary") fallback thresholds of DeQA-Score's
    build_soft_labels/gen_soft_label.py; `missing_std`: what to do with a source that
    publishes no std (SPAQ): `skip` it, or write the `binary` split of its MOS.
    """

    density: Literal["pdf", "cdf"] | None = None  # None: DeQA-Score's default for the source
    thre_std: float = Field(0.2, ge=0)
    thre_diff: float = Field(0.1, ge=0)
    missing_std: Literal["skip", "binary"] = "skip"


class ExportOptions(_Config):
    """Settings of the export formats that need more than the task files (docs/exports.md).

    `compose`: LLaVA 1.5 multi-image records: None refuses them (skipped, named), or
    `side-by-side` writes one labelled canvas per record. `deqa_score`: per-source
    overrides (dataset name -> DeqaSourceConfig). `qinsight_categories`: distortion
    categories of the Q-Insight degradation file (None: the four of its prompt; clean
    images always). `qinsight_data_root`: the prefix of `json_path` in the Q-Insight
    data_config files (where the dataset sits relative to their training folder).
    """

    compose: Literal["side-by-side"] | None = None
    deqa_score: dict[str, DeqaSourceConfig] = {}
    qinsight_categories: list[str] | None = None
    qinsight_data_root: str = "./data/dqgen"


class IspConfig(_Config):
    """In-context scoring records (`A_score_isp`, docs/label-tasks.md).

    `k`: example images per record. `per_image`: records per target image (0: none).
    `scale_probability`: train records whose scores go through a seeded monotone map
    s -> s ** gamma, gamma log-uniform in [1 / gamma_max, gamma_max]. `flip_probability`:
    train records with scores 1 - s ("lower is better"). `augment_test`: the same draws on
    other splits too (default: test records are never augmented).
    """

    k: int = Field(3, ge=1, le=15)
    per_image: int = Field(1, ge=0, le=10)
    scale_probability: float = Field(0.5, ge=0.0, le=1.0)
    gamma_max: float = Field(2.0, ge=1.0, le=10.0)
    flip_probability: float = Field(0.5, ge=0.0, le=1.0)
    augment_test: bool = False


class LabelTasksConfig(_Config):
    """Task families built from the human labels of `sources` (docs/label-tasks.md).

    `score`: A_score for every MOS source. `aigc`: A_score_prompt, A_align, A_auth and the
    AB_* comparisons per target for sources with prompts. `folds`: write the first K repeated
    splits of prompt-split sources as tasks/<task>/fold<k>/{train,test}.json (0: none).
    `isp`: in-context scoring records. `prompt_max_chars`: longest prompt quoted in a question
    (longer ones are cut at a word and end with "..."; the record keeps the full prompt).
    `describe`: run the MOS-grounded respond pass (pipeline/respond/mos.py, the manifest's
    responder) and write A_describe; `describe_version`: its instruction version.
    """

    score: bool = True
    aigc: bool = True
    folds: int = Field(0, ge=0, le=100)
    isp: IspConfig = IspConfig()
    prompt_max_chars: int = Field(200, ge=16, le=2000)
    describe: bool = False
    describe_version: str = "v1"
class ScoringConfig(_Config):
    """MLLM quality scoring (pipeline/score/; docs/scoring.md): standard-guided levels for
    the whole image and its local regions, asked of the manifest's `responder`.

    `enabled`: `dqgen build` runs the score stage (after labels; `dqgen score` runs it
    alone). `levels`: number of levels (1..levels); `standards`: one sentence per level
    (default: prompts/scoring/standard.<prompt_version>.yaml). `regions`: none, grid
    (`grid` rows x cols), segments (`segments` SLIC regions) or both; `global_weight`: w of
    final = w * global + (1 - w) * area-weighted mean of the regions. `datasets`: which
    labelled sources to score (None: all of `sources`); `references`: also score the
    ingested references and write them as a pseudo-labelled source (`pseudo_label_name`);
    `samples`: also score every synthetic sample's images A and B.
    """

    enabled: bool = False
    prompt_version: str = "v1"
    levels: int = Field(7, ge=2, le=10)
    standards: list[str] | None = None
    regions: Literal["none", "grid", "segments", "both"] = "segments"
    grid: tuple[int, int] = (2, 2)
    segments: int = Field(4, ge=1, le=16)
    slic_segments: int = Field(64, ge=2)
    compactness: float = Field(10.0, gt=0)
    min_region_area: float = Field(0.05, ge=0.0, lt=1.0)
    global_weight: float = Field(0.5, ge=0.0, le=1.0)
    mask_value: int = Field(128, ge=0, le=255)
    max_side: int = Field(1024, ge=16)  # images are sent as PNG, long side at most this
    max_tokens: int = Field(16, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    datasets: list[str] | None = None
    references: bool = False
    samples: bool = False  # also score the synthetic samples' images (scores/<key>/samples.jsonl)
    pseudo_label_name: str = "mllm_score"
    pseudo_label_margin: float = Field(0.1, ge=0.0, le=1.0)


class TasksConfig(_Config):
    """How the assemble/export/report stages write task files (see README "Task files").

    `severity_filter_noref`: drop slight (severity 1) brighten/darken/contrast/saturate/
    quantization/oversharpen samples from the no-reference identification tasks (spec).
    `sentence_probability` / `count_hint_probability`: train-split draws of the brief
    answer form and of the "ONE"/"TWO" hint (test splits: short form and hint always).
    `questions_version`: prompts/questions/<pool>.<version>.yaml. `responder_key`: which
    responses/<key>/ folder feeds the detail tasks (default: the manifest's responder).
    `pair_sources`: which pairs/<source>/ folders of human-judged pairs join the brief
    comparison tasks (None: those of the manifest's `sources`; folders left by a
    source since removed from the manifest are ignored). `exports`: formats `dqgen build`
    writes at the end (EXPORT_FORMATS); `export_options`: their settings (ExportOptions).
    """

    severity_filter_noref: bool = True
    sentence_probability: float = Field(0.5, ge=0.0, le=1.0)
    count_hint_probability: float = Field(0.5, ge=0.0, le=1.0)
    questions_version: str = "v1"
    responder_key: str | None = None
    pair_sources: list[str] | None = None
    exports: list[ExportFormat] = []
    export_options: ExportOptions = ExportOptions()
    report: bool = True
    contact_sheet_samples: int = Field(12, ge=0, le=64)
    labels: LabelTasksConfig = LabelTasksConfig()  # label task families (label_tasks)
    extra: dict[str, Any] = {}


class LabelSourceConfig(_Config):
    """A human-labelled dataset read by the labels stage (README "Human-labelled datasets").

    `dataset`: adapter name (`dqgen labels list`). `root`: the dataset folder as downloaded
    (relative to the manifest's folder). `margin`: minimum difference of normalised scores
    for a pair (None: the adapter's default, 0.1; BAPPS 0 = drop ties only). `max_pairs`: a
    total shared between splits, a per-split mapping, "all", "images" (as many pairs as
    images) or None (the adapter's default: the published count where DQ-495K used the
    dataset). `split`: official / reference / prompt / random / train / test (None: the
    adapter's default). `repeats`: repeated splits of the prompt rule. `images`: "link"
    (a symlink labels/<dataset>/src -> root) or "copy" (copy the images that pairs use).
    `pairs`: build instant-rating pairs (off: only image records and splits).
    """

    dataset: str
    root: str
    margin: float | None = Field(None, ge=0.0, lt=1.0)
    max_pairs: int | dict[str, int] | Literal["all", "images"] | None = None
    split: Literal["official", "reference", "prompt", "random", "train", "test"] | None = None
    test_fraction: float = Field(0.2, ge=0.0, le=1.0)
    repeats: int = Field(10, ge=1, le=100)
    images: Literal["link", "copy"] = "link"
    pairs: bool = True

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        from pipeline.labels.registry import ADAPTERS, UnknownDatasetError, get_adapter

        if not ADAPTERS:
            import pipeline.labels  # noqa: F401  (registers the adapters)
        try:
            return get_adapter(v).name
        except UnknownDatasetError as err:
            raise ValueError(str(err)) from None

    @field_validator("max_pairs")
    @classmethod
    def _non_negative(cls, v: Any) -> Any:
        values = v.values() if isinstance(v, dict) else [v] if isinstance(v, int) else []
        if any(n < 0 for n in values):
            msg = f"max_pairs must be >= 0, got {v}"
            raise ValueError(msg)
        return v


class ProbeSettings(_Config):
    """The learnability probe `dqgen build` runs after assembly (docs/training.md).

    Absent from a manifest: no probe. `epochs`: passes over the train split; `seed`: None
    takes the manifest's seed; `device`: auto (CUDA when present), cpu or cuda; `minutes`:
    cap on the probe's wall time (it stops and says so in probe/metrics.json).
    """

    epochs: int = Field(..., ge=1)
    seed: int | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    minutes: float | None = Field(None, gt=0)


class Manifest(_Config):
    """A build manifest. See data_manifest/demo.yaml for a commented example."""

    name: str
    seed: int = 0
    output: str = "out/{name}"
    references: ReferencesConfig = ReferencesConfig()
    resize: ResizeConfig = ResizeConfig()
    clean_probability: float = Field(0.05, ge=0.0, le=1.0)
    # Multi-distortion mix (pipeline/plan.py): "original" (DQ-495K's: pairs uniform over the
    # allowed ordered pairs; refA_md clean with clean_probability; refAB_md images clean /
    # one / two distortions) or "dqgen_v1" (dqgen 1: always two, first category uniform).
    md_mix: Literal["original", "dqgen_v1"] = "original"
    counts: dict[str, dict[str, int]] = {}
    # samples per kind and split that get a detail answer (pipeline/detail.py; None: all)
    detail_counts: dict[str, dict[str, int]] | None = None
    png_compress_level: int = Field(1, ge=0, le=9)
    chunk_size: int = Field(256, ge=1)  # samples per synthesis chunk (unit of work and resume)
    judge: JudgeConfig = JudgeConfig()
    responder: ResponderConfig = ResponderConfig()
    tasks: TasksConfig = TasksConfig()
    sources: list[LabelSourceConfig] = []  # human-labelled datasets (labels stage)
    scoring: ScoringConfig = ScoringConfig()  # MLLM quality scoring (score stage)
    probe: ProbeSettings | None = None  # learnability probe after assembly (None: none)
    base_dir: str = "."  # folder of the manifest file (set by load_manifest)

    @field_validator("counts", "detail_counts")
    @classmethod
    def _known_kinds(cls, v: dict[str, dict[str, int]] | None
                     ) -> dict[str, dict[str, int]] | None:
        for kind, per_split in (v or {}).items():
            if kind not in KINDS:
                msg = f"unknown sample kind {kind!r}; known: {', '.join(KINDS)}"
                raise ValueError(msg)
            for split, n in per_split.items():
                if n < 0:
                    msg = f"{kind}.{split}: count must be >= 0, got {n}"
                    raise ValueError(msg)
                if n > MAX_COUNT:
                    msg = (f"{kind}.{split}: count {n} is above the limit of {MAX_COUNT:,} "
                           f"per kind and split")
                    raise ValueError(msg)
        return v

    @field_validator("sources")
    @classmethod
    def _unique_sources(cls, v: list[LabelSourceConfig]) -> list[LabelSourceConfig]:
        seen: set[str] = set()
        for src in v:  # `dataset` is already the canonical adapter name here
            if src.dataset in seen:
                msg = (f"dataset {src.dataset!r} listed twice; one entry per dataset "
                       f"(its split, margin and caps apply to the whole dataset)")
                raise ValueError(msg)
            seen.add(src.dataset)
        return v

    def resolve(self, path: str) -> Path:
        """A manifest path made absolute against the manifest's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (Path(self.base_dir) / p).resolve()

    def output_dir(self) -> Path:
        """The dataset folder: `output` with `{name}` filled in; relative to the working dir."""
        return Path(self.output.format(name=self.name)).expanduser().resolve()

    def references_root(self) -> Path:
        """The folder references are read from (`@skimage`: scikit-image's bundled photos)."""
        if self.references.root == "@skimage":
            import skimage.data  # lazy: only the demo needs it

            return Path(skimage.data.__file__).resolve().parent
        return self.resolve(self.references.root)

    def kinds(self) -> list[str]:
        return [k for k in KINDS if k in self.counts]

    def splits(self) -> list[str]:
        seen: list[str] = []
        for per_split in self.counts.values():
            seen += [s for s in per_split if s not in seen]
        return seen


def check_manifest_files(manifest: Manifest) -> None:
    """Refuse a manifest whose input files are missing, before any stage runs.

    Checked: the judge's predictions file (kind `predictions`, resolved against the
    manifest's folder). `load_manifest` calls this; so does the build for a Manifest made
    in code.

    Raises:
        ManifestError: naming the field and the resolved path (no file name: the caller
            prefixes it when there is one).
    """
    judge = manifest.judge
    if judge.kind == "predictions" and judge.predictions:
        path = manifest.resolve(judge.predictions)
        if not path.is_file():
            what = "is not a file" if path.exists() else "not found"
            msg = (f"judge.predictions: {path} {what} (relative paths are resolved against "
                   f"the manifest's folder, {manifest.base_dir})")
            raise ManifestError(msg)


def load_demo_manifest() -> Manifest:
    """The embedded demo, data_manifest/demo.yaml inside the installed package (found from
    any working directory)."""
    import importlib.resources

    ref = importlib.resources.files("data_manifest") / "demo.yaml"
    with importlib.resources.as_file(ref) as path:
        return load_manifest(path)


def load_manifest(path: str | Path, **overrides: Any) -> Manifest:
    """Read and validate a manifest file, and check that its input files exist.

    Raises:
        ManifestError: missing file, bad YAML, a field that does not validate, or a
            missing input file (`judge.predictions`); the message names the file and the
            field path (e.g. `counts.refA_sd.train`).
    """
    path = Path(path)
    try:
        data = load_yaml(path)
    except FileNotFoundError:
        msg = f"{path}: manifest not found"
        raise ManifestError(msg) from None
    except OSError as err:
        msg = f"{path}: cannot read the manifest: {err.strerror or err}"
        raise ManifestError(msg) from None
    except YamlError as err:  # one line: file:line:column: problem (duplicate keys too)
        raise ManifestError(str(err)) from None
    if not isinstance(data, dict):
        msg = f"{path}: a manifest must be a YAML mapping, got {type(data).__name__}"
        raise ManifestError(msg)
    data.setdefault("name", path.stem)
    data["base_dir"] = str(path.resolve().parent)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: "
            f"{e['msg'].removeprefix('Value error, ')}" for e in err.errors()
        )
        msg = f"{path}: invalid manifest: {problems}"
        raise ManifestError(msg) from None
    try:
        check_manifest_files(manifest)
    except ManifestError as err:
        msg = f"{path}: invalid manifest: {err}"
        raise ManifestError(msg) from None
    return manifest
