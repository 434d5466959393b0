"""The probe network: a small CNN from scratch with three heads (torch only).

- a trunk of four 3x3 conv stages (stride 1, 2, 2, 2; one conv each, so a CPU trains it
  at useful speed) shared by every head;
- *identify* (13 classes: clean + 12 categories) and *severity* (a score, 0 = clean ... 5)
  from the channel means and standard deviations of every stage of image A (distortions
  show in first-order statistics: brightness, contrast, saturation; and in second-order ones
  at fine scales: noise, blur, blocking);
- *compare*: a learned, LPIPS-like distance between the reference and each image (per stage:
  squared feature difference, spatial mean, non-negative channel weights; batch norm keeps
  the stages on one scale, and LPIPS's per-pixel unit normalisation is left out: on a CPU it
  cost more than the convolutions); the image with the smaller distance to the reference is the better one, so
  ``logit(A better) = scale * (d(ref, B) - d(ref, A))`` (a siamese head: A and B go through
  the same weights, and swapping them flips the answer exactly).

Inputs are uint8 tensors N x 3 x H x W; any H x W works (global pooling), so evaluation may
use larger windows than training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ProbeNet"]

_MEAN, _STD = 0.45, 0.25  # of photos in [0, 1], roughly: inputs near zero mean, unit spread


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ProbeNet(nn.Module):
    """Trunk + identify / severity / compare heads (see the module docstring).

    Args:
        n_classes: identification classes (13: clean + 12 categories).
        width: channels of the first stage (stages: 1x, 2x, 4x, 6x `width`).
    """

    def __init__(self, n_classes: int = 13, width: int = 16) -> None:
        super().__init__()
        self.channels = (width, 2 * width, 4 * width, 6 * width)
        c = (3, *self.channels)
        self.stages = nn.ModuleList(_block(c[i], c[i + 1], 1 if i == 0 else 2)
                                    for i in range(len(self.channels)))
        stats = 2 * (3 + sum(self.channels))
        self.embed = nn.Sequential(nn.Linear(stats, 128), nn.ReLU(inplace=True))
        self.identify = nn.Linear(128, n_classes)
        self.severity = nn.Linear(128, 1)
        # compare: non-negative weights per channel of the input and of every stage
        self.dist_weights = nn.ParameterList(nn.Parameter(torch.zeros(ch))
                                             for ch in (3, *self.channels))
        self.dist_scale = nn.Parameter(torch.tensor(2.0))

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """[normalised input, stage 1, ..., stage 4] of uint8 images N x 3 x H x W."""
        x = images.float().mul_(1.0 / (255.0 * _STD)).sub_(_MEAN / _STD)  # in place: 1 pass
        out = [x]
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def single(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(identify logits N x classes, severity N) of images A."""
        feats = self.features(images)
        stats = [t for f in feats for t in (f.mean((2, 3)), f.float().std((2, 3)))]
        h = self.embed(torch.cat(stats, 1))
        return self.identify(h), self.severity(h).squeeze(1)

    def distance(self, feats_ref: list[torch.Tensor], feats_x: list[torch.Tensor]) -> torch.Tensor:
        """Learned distance N between two images' feature lists."""
        total = 0.0
        for w, fr, fx in zip(self.dist_weights, feats_ref, feats_x, strict=True):
            diff = (fr.float() - fx.float()).pow(2).mean((2, 3))  # N x C
            total = total + (diff * F.softplus(w)).mean(1)  # mean: stages of any width weigh alike
        return total  # type: ignore[return-value]

    def compare(self, ref: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Logit that A is the better image (closer to the reference) than B, N."""
        n = ref.shape[0]
        feats = self.features(torch.cat([ref, a, b]))  # one pass, one set of BN statistics
        fr = [f[:n] for f in feats]
        fa = [f[n:2 * n] for f in feats]
        fb = [f[2 * n:] for f in feats]
        return F.softplus(self.dist_scale) * (self.distance(fr, fb) - self.distance(fr, fa))
