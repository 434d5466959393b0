"""Small datasets in the official layouts and file formats, written by the tests.

Each `make_<dataset>(root)` writes a few tiny real images (Pillow) and the label file(s) as
the dataset publishes them, including tricky rows (missing file, NaN score, duplicated
name, bad number) and header variants (BOM, case, spaces), and returns what a test needs
to check: the expected good rows and the rows that must fail.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "make_agiqa1k",
    "make_agiqa3k",
    "make_aigciqa2023",
    "make_bapps",
    "make_kadid10k",
    "make_koniq10k",
    "make_livec",
    "make_pipal",
    "make_spaq",
    "make_tid2013",
    "tiny_image",
]


def tiny_image(path: Path, value: int, size: tuple[int, int] = (8, 8)) -> Path:
    """Write an 8x8 RGB image (format from the suffix) filled with a value-derived colour."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0], 3), np.uint8)
    arr[...] = (value * 37 % 256, value * 91 % 256, value * 53 % 256)
    Image.fromarray(arr).save(path)
    return path


def _csv(path: Path, header: list[str], rows: list[list[object]], *, bom: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def make_kadid10k(root: Path) -> dict:
    """3 references x 4 distorted images + tricky rows; DMOS header as ' DMOS ' with a BOM."""
    rows: list[list[object]] = []
    good = {}
    for r in range(1, 4):
        ref = f"I{r:02d}.png"
        tiny_image(root / "images" / ref, r)
        for d, dmos in enumerate((4.6, 3.9, 2.5, 1.2), start=1):
            name = f"I{r:02d}_{d:02d}_01.png"
            tiny_image(root / "images" / name, 10 * r + d)
            rows.append([name, ref, dmos + 0.01 * r, 0.5])
            good[name] = dmos + 0.01 * r
    bad = {
        "missing_file": ["I03_05_01.png", "I03.png", 3.0, 0.4],  # no such image
        "nan_score": ["I03_06_01.png", "I03.png", "nan", 0.4],
        "duplicate": ["I01_01_01.png", "I01.png", 2.0, 0.4],
        "bad_number": ["I03_07_01.png", "I03.png", "abc", 0.4],
    }
    for name in ("I03_06_01.png", "I03_07_01.png"):
        tiny_image(root / "images" / name, 99)
    rows += list(bad.values())
    _csv(root / "dmos.csv", ["dist_img", "Ref_Img", " DMOS ", "var"], rows, bom=True)
    return {"good": good, "bad": bad, "refs": 3}


def make_tid2013(root: Path) -> dict:
    """2 references x 4 images; lower-case names against upper-case files; tricky lines.

    Also `mos_std.txt` as released: one std per line of `mos_with_names.txt`, same order.
    """
    lines, good = [], {}
    for r in (1, 2):
        tiny_image(root / "reference_images" / f"I{r:02d}.BMP", r)
        for d, mos in enumerate((6.1, 5.0, 3.2, 1.5), start=1):
            name = f"i{r:02d}_{d:02d}_1.bmp"
            # the release mixes cases: store some files upper-case on disk
            on_disk = name.upper() if d % 2 == 0 else name
            tiny_image(root / "distorted_images" / on_disk, 10 * r + d)
            value = round(mos + 0.1 * r, 5)
            lines.append(f"{value:.5f} {name}")
            good[name] = value
    lines += [
        "4.0 i02_09_1.bmp",  # missing file
        "nan i02_01_2.bmp",  # NaN score
        "3.0 i01_01_1.bmp",  # duplicate
        "x.y i02_01_3.bmp",  # bad number
        "7.0",
    ]  # malformed line
    for n in ("i02_01_2.bmp", "i02_01_3.bmp"):
        tiny_image(root / "distorted_images" / n, 77)
    (root / "mos_with_names.txt").write_text("\n".join(lines) + "\n")
    std = [round(0.5 + 0.01 * i, 4) for i in range(len(lines))]
    (root / "mos_std.txt").write_text("".join(f"{v:.4f}\n" for v in std))
    stds: dict[str, float] = {}
    for line, v in zip(lines, std, strict=True):
        parts = line.split()
        if len(parts) == 2 and parts[1] in good:
            stds.setdefault(parts[1], v)  # the first row of a name wins, as in the adapter
    return {"good": good, "refs": 2, "std": stds}


def make_pipal(root: Path) -> dict:
    """2 references, one label file each (`A0001.txt`), ELO scores; tricky lines."""
    good = {}
    for r in (1, 2):
        ref = f"A{r:04d}"
        tiny_image(root / "Train_Ref" / f"{ref}.bmp", r)
        lines = []
        for d, elo in enumerate((1700.0, 1500.0, 1300.0, 1100.0)):
            name = f"{ref}_{d:02d}_{d:02d}.bmp"
            tiny_image(root / "Train_Dist" / name, 10 * r + d)
            lines.append(f"{name},{elo + r}")
            good[name] = elo + r
        if r == 2:
            lines += [
                f"{ref}_09_00.bmp,900",  # missing file (also outside the range)
                f"{ref}_05_00.bmp,NaN",  # NaN
                f"{ref}_00_00.bmp,2500",  # duplicate, outside the range: must not widen it
                f"{ref}_06_00.bmp,12x4",  # bad number
                "just-a-name",
            ]  # malformed
            for n in (f"{ref}_05_00.bmp", f"{ref}_06_00.bmp"):
                tiny_image(root / "Train_Dist" / n, 55)
        (root / "Train_Label").mkdir(parents=True, exist_ok=True)
        (root / "Train_Label" / f"{ref}.txt").write_text("\n".join(lines) + "\n")
    return {"good": good, "refs": 2, "min": 1101.0, "max": 1702.0}


def make_bapps(root: Path) -> dict:
    """train (2 categories) and val triplets with judge .npy files; a tie, a bad judge, a gap."""
    judges = {
        ("train", "traditional"): [0.0, 1.0, 0.5, 0.0],
        ("train", "cnn"): [1.0, 0.0, 0.5],
        ("val", "traditional"): [0.2, 0.8, 0.6],
    }
    expected = {}
    for (split, cat), values in judges.items():
        base = root / "2afc" / split / cat
        for n, j in enumerate(values):
            stem = f"{n:06d}"
            for k, part in enumerate(("ref", "p0", "p1")):
                tiny_image(base / part / f"{stem}.png", 3 * n + k)
            (base / "judge").mkdir(parents=True, exist_ok=True)
            np.save(base / "judge" / f"{stem}.npy", np.array([j]))
            expected[f"bapps_{split}_{cat}_{stem}"] = j
    # tricky: NaN judge, missing p1, out-of-range judge
    base = root / "2afc" / "train" / "cnn"
    for stem, j, skip in (("000010", np.nan, None), ("000011", 0.0, "p1"), ("000012", 1.5, None)):
        for k, part in enumerate(("ref", "p0", "p1")):
            if part != skip:
                tiny_image(base / part / f"{stem}.png", k)
        np.save(base / "judge" / f"{stem}.npy", np.array([j]))
    return {"judges": expected}


def make_koniq10k(root: Path) -> dict:
    """12 photos with the official set column; tricky rows; header variant with spaces."""
    rows: list[list[object]] = []
    good = {}
    sets = ["training"] * 7 + ["validation"] * 2 + ["test"] * 3
    for i, s in enumerate(sets):
        name = f"{1000 + i}.jpg"
        tiny_image(root / "1024x768" / name, i)
        mos = 10.0 + 6.5 * i
        rows.append([name, 0.1, 0.2, 0.3, 0.3, 0.1, 100, mos, 0.55, s])
        good[name] = (mos, s)
    rows += [
        ["2000.jpg", 0, 0, 0, 0, 0, 100, 50.0, 0.5, "training"],  # missing file
        ["1001.jpg", 0, 0, 0, 0, 0, 100, 40.0, 0.5, "training"],  # duplicate
        ["2001.jpg", 0, 0, 0, 0, 0, 100, "", 0.5, "test"],  # empty MOS
        ["2002.jpg", 0, 0, 0, 0, 0, 100, "NaN", 0.5, "test"],
    ]  # NaN
    tiny_image(root / "1024x768" / "2001.jpg", 1)
    tiny_image(root / "1024x768" / "2002.jpg", 2)
    header = ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", " MOS", "SD ", "set"]
    _csv(root / "koniq10k_distributions_sets.csv", header, rows)
    return {"good": good}


def make_spaq(root: Path) -> dict:
    """10 photos in an xlsx (openpyxl) with attribute columns; tricky rows."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(
        ["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"]
    )
    good = {}
    for i in range(1, 11):
        name = f"{i:05d}.jpg"
        tiny_image(root / "TestImage" / name, i)
        mos = 5.0 + 9.0 * i
        ws.append([name, mos, 50, 51, 52, 53, 54])
        good[name] = mos
    ws.append(["00099.jpg", 40, 1, 2, 3, 4, 5])  # missing file
    ws.append(["00003.jpg", 41, 1, 2, 3, 4, 5])  # duplicate
    ws.append(["00011.jpg", float("nan"), 1, 2, 3, 4, 5])  # NaN
    ws.append(["00012.jpg", "n/a", 1, 2, 3, 4, 5])  # bad number
    tiny_image(root / "TestImage" / "00011.jpg", 1)
    tiny_image(root / "TestImage" / "00012.jpg", 2)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    wb.save(root / "Annotations" / "MOS and Image attribute scores.xlsx")
    return {"good": good}


def make_livec(root: Path) -> dict:
    """7 training entries + 10 images in .mat files (scipy.io.savemat); a NaN and a missing file."""
    from scipy.io import savemat

    names = [f"t{i}.bmp" for i in range(1, 8)] + [f"{i}.JPG" for i in range(100, 110)]
    names += ["200.JPG", "201.JPG", "100.JPG"]  # missing file, NaN MOS, duplicate
    mos = [50.0] * 7 + [20.0 + 6.0 * i for i in range(10)] + [30.0, float("nan"), 60.0]
    std = [10.0] * len(names)
    for i, n in enumerate(names[:17]):
        tiny_image(root / "Images" / ("trainingImages/" + n if i < 7 else n), i)
    tiny_image(root / "Images" / "201.JPG", 1)
    cell = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        cell[i, 0] = np.array([n])
    (root / "Data").mkdir(parents=True, exist_ok=True)
    savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": cell})
    savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.array([mos])})
    savemat(root / "Data" / "AllStdDev_release.mat", {"AllStdDev_release": np.array([std])})
    return {"good": {n: m for n, m in zip(names[7:17], mos[7:17], strict=False)}}


def make_agiqa3k(root: Path) -> dict:
    """6 prompts x 3 models in data.csv (images in AGIQA-3K/); tricky rows."""
    header = [
        "name",
        "prompt",
        "adj1",
        "adj2",
        "style",
        "mos_quality",
        "std_quality",
        "mos_align",
        "std_align",
    ]
    rows: list[list[object]] = []
    good = {}
    prompts = [f"a photo of thing {k}" for k in range(6)]
    for m, model in enumerate(("AttnGAN", "sd1.5", "xl2.2")):
        for k, prompt in enumerate(prompts):
            name = f"{model}_normal_{k:03d}.jpg"
            tiny_image(root / "AGIQA-3K" / name, 10 * m + k)
            mos = 0.5 + 1.5 * m + 0.05 * k
            rows.append([name, prompt, "", "", "anime style" if k % 2 else "", mos, 0.4, 2.5, 0.5])
            good[name] = (mos, prompt)
    rows += [
        ["midj_normal_000.jpg", prompts[0], "", "", "", 2.0, 0.4, 2.0, 0.5],  # missing
        ["AttnGAN_normal_000.jpg", prompts[0], "", "", "", 2.0, 0.4, 2.0, 0.5],  # duplicate
        ["sd1.5_normal_099.jpg", prompts[1], "", "", "", "NaN", 0.4, 2.0, 0.5],  # NaN
        ["sd1.5_normal_098.jpg", prompts[1], "", "", "", 2.0, "bad", 2.0, 0.5],
    ]  # bad std
    tiny_image(root / "AGIQA-3K" / "sd1.5_normal_099.jpg", 1)
    tiny_image(root / "AGIQA-3K" / "sd1.5_normal_098.jpg", 2)
    _csv(root / "data.csv", [h.upper() if h == "name" else h for h in header], rows, bom=True)
    return {"good": good, "prompts": prompts}


def make_aigciqa2023(root: Path) -> dict:
    """5 prompts x 4 images in the published AIGCIQA2023.csv layout (unnamed index column)."""
    header = [
        "",
        "name",
        "prompt",
        "style",
        "class",
        "quality_mos",
        "authenticity_mos",
        "correspondence_mos",
        "quality_std",
        "authenticity_std",
        "correspondence_std",
    ]
    rows: list[list[object]] = []
    good = {}
    n = 0
    for p in range(5):
        prompt = f"a corgi number {p}"
        for k in range(4):
            name = f"{n}.png"
            tiny_image(root / "Image" / "allimg" / name, n)
            q = 35.0 + 8.0 * k + p
            rows.append([n, name, prompt, "Basic", "Animals", q, 50.0, 55.0, 1.1, 1.2, 1.3])
            good[name] = (q, prompt)
            n += 1
    rows += [
        [n, "999.png", "a corgi number 0", "Basic", "Animals", 40, 40, 40, 1, 1, 1],  # missing
        [n + 1, "0.png", "a corgi number 0", "Basic", "Animals", 40, 40, 40, 1, 1, 1],  # dup
        [n + 2, "21.png", "a corgi number 1", "Basic", "Animals", "nan", 40, 40, 1, 1, 1],
        [n + 3, "22.png", "a corgi number 1", "Basic", "Animals", 140, 40, 40, 1, 1, 1],
    ]  # range
    tiny_image(root / "Image" / "allimg" / "21.png", 1)
    tiny_image(root / "Image" / "allimg" / "22.png", 2)
    _csv(root / "AIGCIQA2023.csv", header, rows)
    return {"good": good}


def make_agiqa1k(root: Path) -> dict:
    """4 prompts x 3 images in AIGC_MOS_Zscore.xlsx (openpyxl), images in file/; tricky rows."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Image", "Prompt", "MOS"])
    good = {}
    for p in range(4):
        prompt = f"a cat driving a car, style {p}"
        for k in range(3):
            name = f"sd_{p}_{k}.png"
            tiny_image(root / "file" / name, 3 * p + k)
            mos = round(1.0 + 1.2 * k + 0.1 * p, 3)
            ws.append([name, prompt, mos])
            good[name] = (mos, prompt)
    ws.append(["sd_9_9.png", "a dog", 2.0])  # missing file
    ws.append(["sd_0_0.png", "a dog", 2.0])  # duplicate
    ws.append(["sd_8_8.png", "a dog", "?"])  # bad number
    ws.append(["sd_7_7.png", "a dog", 7.5])  # outside 0..5
    for n in ("sd_8_8.png", "sd_7_7.png"):
        tiny_image(root / "file" / n, 1)
    wb.save(root / "AIGC_MOS_Zscore.xlsx")
    return {"good": good}
