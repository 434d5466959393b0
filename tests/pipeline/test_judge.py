"""Judges: the full-reference score ranks severities; the predictions file judge reads verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageEnhance

import distortions
from pipeline.judge import (
    FR_JUDGE_NAME,
    FrScoreJudge,
    JudgeError,
    PredictionsJudge,
    fr_score,
    make_judge,
    ms_ssim,
)
from pipeline.manifest import Manifest

# Distortions whose damage clearly grows from severity 1 to 5 (one or more per category).
CLEAR_CASES = [
    "blur_gaussian", "blur_motion", "blur_lens", "noise_gaussian_RGB", "noise_impulse",
    "compression_jpeg", "brightness_brighten_shift_RGB", "brightness_darken_gamma_RGB",
    "contrast_weaken_scale", "contrast_strengthen_scale", "saturate_weaken_HSV",
    "saturate_strengthen_YCrCb", "oversharpen", "pixelate", "quantization_median",
]


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    out = []
    for loader, size in ((skimage.data.astronaut, (128, 128)), (skimage.data.chelsea, (150, 100)),
                         (skimage.data.coffee, (144, 96))):
        out.append(np.asarray(Image.fromarray(loader()).resize(size, Image.Resampling.BICUBIC)))
    return out


@pytest.mark.parametrize("name", CLEAR_CASES)
def test_prefers_severity_1_over_5(name: str, photos: list[np.ndarray]) -> None:
    if name not in distortions.REGISTRY:
        pytest.skip(f"{name} is not registered")
    judge = FrScoreJudge()
    for i, ref in enumerate(photos):
        mild = distortions.apply(ref, name, 1, np.random.default_rng(i))
        harsh = distortions.apply(ref, name, 5, np.random.default_rng(i))
        v = judge.verdict("s", ref, mild, harsh)
        assert v.A_better_B and v.score_A > v.score_B, (name, i, v)
        swapped = judge.verdict("s", ref, harsh, mild)
        assert not swapped.A_better_B


def test_scores_identity_colour_and_small_images(photos: list[np.ndarray]) -> None:
    ref = photos[1]
    assert fr_score(ref, ref) == 1.0
    im = Image.fromarray(ref)
    desat = [fr_score(ref, np.asarray(ImageEnhance.Color(im).enhance(f))) for f in (0.7, 0.2)]
    assert 1.0 > desat[0] > desat[1]  # the chroma term sees saturation loss
    tiny = ref[:32, :40]
    noisy = np.clip(tiny + np.random.default_rng(0).normal(0, 25, tiny.shape), 0, 255)
    assert 0.0 < ms_ssim(tiny[..., 0], noisy[..., 0]) < 1.0
    with pytest.raises(ValueError, match="one shape"):
        fr_score(ref, photos[0])


def test_predictions_file_formats(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps({
        "s1": True, "s2": "B", "s3": {"score_A": 0.2, "score_B": 0.7},
        "s4": {"A_better_B": True, "score_A": 0.1, "score_B": 0.9}, "s5": 3}))
    j = PredictionsJudge(tmp_path / "p.json")
    assert j.name == "predictions:p.json"
    assert j.verdict("s1").A_better_B is True
    assert j.verdict("s2").A_better_B is False
    v3 = j.verdict("s3")
    assert (v3.A_better_B, v3.score_A, v3.score_B) == (False, 0.2, 0.7)
    assert j.verdict("s4").A_better_B is True  # explicit verdict wins over scores
    with pytest.raises(JudgeError, match="must be a bool"):
        j.verdict("s5")
    with pytest.raises(JudgeError, match="no prediction for sample 'nope'"):
        j.verdict("nope")

    (tmp_path / "p.jsonl").write_text('{"sample_id": "x", "A_better_B": false}\n'
                                      '{"id": "y", "score_A": 3, "score_B": 1}\n')
    j = PredictionsJudge(tmp_path / "p.jsonl")
    assert j.verdict("x").A_better_B is False and j.verdict("y").A_better_B is True
    (tmp_path / "list.json").write_text(json.dumps([{"sample_id": "z", "A_better_B": True}]))
    assert PredictionsJudge(tmp_path / "list.json").verdict("z").A_better_B is True


def test_make_judge(tmp_path: Path) -> None:
    assert make_judge(Manifest(name="a")).name == FR_JUDGE_NAME
    (tmp_path / "v.json").write_text("{}")
    m = Manifest(name="b", base_dir=str(tmp_path),
                 judge={"kind": "predictions", "predictions": "v.json"})
    assert make_judge(m).name == "predictions:v.json"
    m = Manifest(name="c", base_dir=str(tmp_path),
                 judge={"kind": "predictions", "predictions": "missing.json"})
    with pytest.raises(JudgeError, match="not found"):
        make_judge(m)
