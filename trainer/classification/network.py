"""The served network: pixels in [0, 1] in, one probability a tag out.

Normalisation and the final softmax (Multiclass) or sigmoid (Multilabel) are part of the network, so that what
Triton serves needs nothing but kubevision.core.serving.classification.to_input in front of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch import nn

from kubevision.core.domains import Backbone
from kubevision.core.serving.classification import to_input
from kubevision.trainer.backbone import MEAN, STD


def device() -> torch.device:
    """CUDA when present, the CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def normalise(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1] to the range the backbone was trained on, as the served Classifier does."""
    mean = torch.tensor(MEAN, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=pixels.device).view(1, 3, 1, 1)
    return (pixels - mean) / std


def mixed_precision(on: torch.device):
    """bfloat16 autocast on a GPU (no loss scaling needed); full precision on the CPU, where it is not faster."""
    return torch.autocast(on.type, dtype=torch.bfloat16, enabled=on.type == "cuda")


class Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, head: nn.Linear, multilabel: bool, flip_average: bool = False):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))
        self.backbone = backbone
        self.head = head
        self.multilabel = multilabel
        self.flip_average = flip_average  # average the image's and its mirror image's probabilities

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone((images - self.mean) / self.std))

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.logits(images)
        return torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.flip_average:
            return (self.probabilities(images) + self.probabilities(torch.flip(images, dims=[3]))) / 2
        return self.probabilities(images)


def batch_inputs(images: list[Image.Image], backbone: Backbone) -> torch.Tensor:
    return torch.from_numpy(np.stack([to_input(image, backbone) for image in images]))


@dataclass
class Trained:
    """What every training mode returns."""

    classifier: Classifier
    held_out: np.ndarray  # indices of the images that scored the model
    probabilities: np.ndarray  # their predictions, from models that never saw them
    choice: str = ""  # Advanced: which model it serves, Quick's or the fine-tuned network
    comparison: dict[str, float] = field(default_factory=dict)  # Advanced: the cross-validated figures it chose by
