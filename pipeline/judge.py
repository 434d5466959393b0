"""Judges: which of the two distorted images of a refAB sample is better.

Two judges, chosen by the manifest's `judge` section:

* `fr_score` (default), judge name `fr_msssim_ycc_v1`: a full-reference quality score of
  each image against the reference, higher is better (1.0 for an image identical to the
  reference); `A_better_B = score_A >= score_B`. Scores closer than
  `pipeline.effect.TIE_MARGIN` (and identical images always) are a tie: synthesis then
  redraws B, and a tie that remains gets no verdict (`SampleRecord.tie`).

  score = 0.8 * MS-SSIM(Y) + 0.1 * SSIM(Cb) + 0.1 * SSIM(Cr)

  Why this score: MS-SSIM (Wang, Simoncelli & Bovik 2003) is the standard full-reference
  metric for structural damage (blur, noise, compression, pixelation, quantisation) and
  ranks distortion levels of one image reliably, which is exactly the judge's question
  (same reference, two distortions). Computed on luminance only it is blind to colour:
  a saturation change would score 1.0. So chroma enters with the weights of Wang, Lu &
  Bovik's colour SSIM for video quality (2004): Y 0.8, Cb 0.1, Cr 0.1. Chroma SSIM is
  taken at half resolution (chroma acuity is lower) and single scale.

  MS-SSIM details: the Y, Cb, Cr planes of OpenCV's BT.601 YCrCb conversion in [0, 255];
  11 x 11 Gaussian window, sigma 1.5, reflected borders (so 224 px images keep all their
  pixels); K1 = 0.01, K2 = 0.03, L = 255; 2 x 2 mean downsampling between scales; the
  original five scale weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), using as many
  scales as keep the coarsest image at least 11 px (5 for 224 px, fewer for small test
  images), the used weights renormalised to sum to 1. Negative contrast-structure terms
  are clipped to 0 before the weighted geometric mean (as in common implementations), so
  the score is in [0, 1] up to rounding. Scores are rounded to 6 decimals.

* `predictions`, judge name `predictions:<file name>`: verdicts read from a file, as the
  original build used an external model's. JSON (an object keyed by sample id, or a list
  of objects with `sample_id`/`id`) or JSON Lines (objects with `sample_id`/`id`). A value
  is a bool (A better than B), "A"/"B", or an object with `A_better_B` and/or `score_A`
  and `score_B` (higher better; `A_better_B` wins when both are given). A sample id
  missing from the file raises `JudgeError` (the stage records a failure).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from pipeline.manifest import Manifest
from pipeline.records import JudgeVerdict

__all__ = [
    "FR_JUDGE_NAME",
    "FrScoreJudge",
    "Judge",
    "JudgeError",
    "PredictionsJudge",
    "fr_score",
    "make_judge",
    "ms_ssim",
]

FR_JUDGE_NAME = "fr_msssim_ycc_v1"
_WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
_WIN, _SIGMA = 11, 1.5
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
_Y_WEIGHT, _C_WEIGHT = 0.8, 0.1


class JudgeError(RuntimeError):
    """A verdict that cannot be given (e.g. sample id missing from a predictions file)."""


class Judge(Protocol):
    """Decides which of A and B is better for one sample."""

    name: str

    def verdict(self, sample_id: str, ref: np.ndarray, a: np.ndarray, b: np.ndarray
                ) -> JudgeVerdict:
        """Verdict for one sample (images RGB uint8 of one size)."""
        ...


# --------------------------------------------------------------------------- FR score
def _blur(x: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(x, (_WIN, _WIN), _SIGMA, borderType=cv2.BORDER_REFLECT)


def _ssim_terms(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean SSIM, mean contrast-structure) of two float32 planes."""
    mx, my = _blur(x), _blur(y)
    sxx = _blur(x * x) - mx * mx
    syy = _blur(y * y) - my * my
    sxy = _blur(x * y) - mx * my
    cs = (2 * sxy + _C2) / (sxx + syy + _C2)
    lum = (2 * mx * my + _C1) / (mx * mx + my * my + _C1)
    return float(np.mean(lum * cs)), float(np.mean(cs))


def _down2(x: np.ndarray) -> np.ndarray:
    h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    x = x[:h, :w]
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def ms_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """MS-SSIM of two grey planes (float, range 0..255) of one size; see module docstring."""
    if x.shape != y.shape:
        msg = f"planes must have one shape, got {x.shape} and {y.shape}"
        raise ValueError(msg)
    side = min(x.shape[:2])
    scales = 1
    while scales < len(_WEIGHTS) and side // (2 ** scales) >= _WIN:
        scales += 1
    weights = _WEIGHTS[:scales] / _WEIGHTS[:scales].sum()
    x, y = x.astype(np.float32), y.astype(np.float32)
    value = 1.0
    for j in range(scales):
        ssim_j, cs_j = _ssim_terms(x, y)
        term = ssim_j if j == scales - 1 else cs_j
        value *= max(term, 0.0) ** weights[j]
        if j < scales - 1:
            x, y = _down2(x), _down2(y)
    return float(value)


def _ycc(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb).astype(np.float32)


def fr_score(ref: np.ndarray, image: np.ndarray) -> float:
    """Full-reference quality of `image` against `ref` (RGB uint8, one size); 1.0 = identical."""
    if ref.shape != image.shape or ref.ndim != 3 or ref.shape[2] != 3:
        msg = f"ref and image must be RGB arrays of one shape, got {ref.shape} and {image.shape}"
        raise ValueError(msg)
    if np.array_equal(ref, image):
        return 1.0
    r, d = _ycc(ref), _ycc(image)
    y = ms_ssim(r[..., 0], d[..., 0])
    chroma = [max(_ssim_terms(_down2(r[..., c]), _down2(d[..., c]))[0], 0.0) for c in (1, 2)]
    return round(_Y_WEIGHT * y + _C_WEIGHT * sum(chroma), 6)


class FrScoreJudge:
    """The default judge: `fr_score` of A and B against the reference."""

    name = FR_JUDGE_NAME

    def verdict(self, sample_id: str, ref: np.ndarray, a: np.ndarray, b: np.ndarray
                ) -> JudgeVerdict:
        sa, sb = fr_score(ref, a), fr_score(ref, b)
        return JudgeVerdict(judge=self.name, score_A=sa, score_B=sb, A_better_B=sa >= sb)


# --------------------------------------------------------------------------- predictions
def _parse_value(sample_id: str, value: Any, source: str
                 ) -> tuple[bool, float | None, float | None]:
    if isinstance(value, bool):
        return value, None, None
    if isinstance(value, str) and value.strip().upper() in ("A", "B"):
        return value.strip().upper() == "A", None, None
    if isinstance(value, dict):
        sa, sb = value.get("score_A"), value.get("score_B")
        sa = float(sa) if sa is not None else None
        sb = float(sb) if sb is not None else None
        if isinstance(value.get("A_better_B"), bool):
            return value["A_better_B"], sa, sb
        if sa is not None and sb is not None:
            return sa >= sb, sa, sb
    msg = (f"{source}: prediction for {sample_id!r} must be a bool, 'A'/'B', or an object with "
           f"A_better_B or score_A and score_B; got {value!r}")
    raise JudgeError(msg)


@lru_cache(maxsize=4)
def _load_predictions(path: str, mtime_ns: int) -> dict[str, Any]:
    text = Path(path).read_text(encoding="utf-8")
    name = Path(path).name
    try:
        data = json.loads(text)
        rows = None if isinstance(data, dict) else data
    except json.JSONDecodeError:
        data, rows = None, []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    msg = f"{name}: line {n} is not JSON: {err}"
                    raise JudgeError(msg) from None
    if rows is None:
        return dict(data)
    if not isinstance(rows, list):
        msg = f"{name}: expected an object keyed by sample id, a list, or JSON Lines"
        raise JudgeError(msg)
    out: dict[str, Any] = {}
    for row in rows:
        sid = row.get("sample_id", row.get("id")) if isinstance(row, dict) else None
        if not isinstance(sid, str):
            msg = f"{name}: every row needs a 'sample_id' (or 'id'), got {row!r}"
            raise JudgeError(msg)
        out[sid] = row
    return out


class PredictionsJudge:
    """Verdicts from a predictions file keyed by sample id (see module docstring)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.name = f"predictions:{self.path.name}"
        if not self.path.is_file():
            msg = f"judge.predictions: {self.path} not found"
            raise JudgeError(msg)

    def verdict(self, sample_id: str, ref: np.ndarray | None = None,
                a: np.ndarray | None = None, b: np.ndarray | None = None) -> JudgeVerdict:
        table = _load_predictions(str(self.path), self.path.stat().st_mtime_ns)
        if sample_id not in table:
            msg = f"{self.path.name}: no prediction for sample {sample_id!r}"
            raise JudgeError(msg)
        better, sa, sb = _parse_value(sample_id, table[sample_id], self.path.name)
        return JudgeVerdict(judge=self.name, score_A=sa, score_B=sb, A_better_B=better)


def make_judge(manifest: Manifest) -> Judge:
    """The judge the manifest selects."""
    if manifest.judge.kind == "predictions":
        return PredictionsJudge(manifest.resolve(manifest.judge.predictions or ""))
    return FrScoreJudge()
