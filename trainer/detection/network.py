"""The detector: the domain's ImageNet-pretrained EfficientNet-Lite, a feature pyramid, and torchvision's FCOS head.

FCOS rather than RetinaNet or SSDlite: trained as Quick trains, on the same pyramid, it scored best of the three
(docs/benchmarks.md, "FCOS, RetinaNet or SSDlite"); anchor-free, it has no anchor sizes to fit to a project's
objects, and one point a feature-map cell keeps the head small. The
pyramid and head are narrower than FCOS's published ones (64 channels, 2 convolutions a branch) so that a CPU
answers an image in a few tens of milliseconds.

`Served` is what is exported: pixels in [0, 1] in, and the boxes, scores and classes of
kubevision.core.serving.detection out, with box decoding and non-maximum suppression inside the graph.
"""

from __future__ import annotations

from collections import OrderedDict

import timm
import torch
import torchvision
from torch import nn
from torchvision.models.detection import FCOS
from torchvision.models.detection.fcos import FCOSHead
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from kubevision.core.domains import Backbone
from kubevision.core.serving.detection import MAX_DETECTIONS
from kubevision.trainer.backbone import MEAN, STD, pretrained

PYRAMID_CHANNELS = 64
HEAD_CONVOLUTIONS = 2
FEATURE_STAGES = (2, 3, 4)  # EfficientNet's stages at strides 8, 16 and 32; the pyramid adds 64 and 128
# Square input side per backbone: detection needs more pixels than classification's 224/240.
INPUT_SIZES = {"tf_efficientnet_lite0": 320, "tf_efficientnet_lite1": 384}
SCORE_THRESHOLD = 0.01  # boxes below it are dropped before suppression; low ones still count for average precision
IOU_THRESHOLD = 0.6  # FCOS's own non-maximum suppression threshold


def input_size(backbone: Backbone) -> int:
    return INPUT_SIZES[backbone.architecture]


class Pyramid(nn.Module):
    """EfficientNet's features at strides 8, 16, 32 and a feature pyramid over them (five levels).

    BatchNorm keeps its pretrained statistics: batches of a few images estimate them badly."""

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.body = timm.create_model(backbone.architecture, features_only=True, out_indices=FEATURE_STAGES)
        missing, _ = self.body.load_state_dict(pretrained(backbone).state_dict(), strict=False)
        if missing:
            raise ValueError(f"{backbone.architecture}: no pretrained weights for {missing}")
        self.fpn = FeaturePyramidNetwork(self.body.feature_info.channels(), PYRAMID_CHANNELS,
                                         extra_blocks=LastLevelP6P7(PYRAMID_CHANNELS, PYRAMID_CHANNELS))
        self.out_channels = PYRAMID_CHANNELS

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return self.fpn(OrderedDict((str(i), feature) for i, feature in enumerate(self.body(images))))

    def train(self, mode: bool = True) -> Pyramid:
        super().train(mode)
        for module in self.body.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self


def build(backbone: Backbone, classes: int) -> FCOS:
    """torchvision's FCOS on the pretrained backbone; it takes images of input_size(backbone) already stretched to
    that square, so its own resizing changes nothing."""
    size = input_size(backbone)
    return FCOS(Pyramid(backbone), num_classes=classes, min_size=size, max_size=size, image_mean=list(MEAN),
                image_std=list(STD), head=FCOSHead(PYRAMID_CHANNELS, 1, classes, num_convs=HEAD_CONVOLUTIONS),
                score_thresh=SCORE_THRESHOLD, nms_thresh=IOU_THRESHOLD, detections_per_img=MAX_DETECTIONS)


class _NonMaxSuppression(torch.autograd.Function):
    """ONNX's NonMaxSuppression, batched and per class: (image, class, box) rows of the kept boxes. Computed with
    torchvision in PyTorch, exported as the one ONNX operator, which ONNX Runtime and Triton run."""

    @staticmethod
    def forward(ctx, boxes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:  # [B, N, 4], [B, K, N]
        rows = [torch.zeros((0, 3), dtype=torch.int64)]
        for image in range(scores.shape[0]):
            for tag in range(scores.shape[1]):
                candidates = torch.nonzero(scores[image, tag] > SCORE_THRESHOLD).flatten()
                keep = torchvision.ops.nms(boxes[image, candidates], scores[image, tag, candidates], IOU_THRESHOLD)
                kept = candidates[keep[:MAX_DETECTIONS]]
                rows.append(torch.stack([torch.full_like(kept, image), torch.full_like(kept, tag), kept], dim=1))
        return torch.cat(rows)

    @staticmethod
    def symbolic(g, boxes, scores):
        def constant(value, dtype):
            return g.op("Constant", value_t=torch.tensor([value], dtype=dtype))

        return g.op("NonMaxSuppression", boxes, scores, constant(MAX_DETECTIONS, torch.int64),
                    constant(IOU_THRESHOLD, torch.float32), constant(SCORE_THRESHOLD, torch.float32))


class Served(nn.Module):
    """The exported detector: see kubevision.core.serving.detection for its inputs and outputs."""

    def __init__(self, detector: FCOS, size: int):
        super().__init__()
        self.detector = detector
        self.size = size
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))
        with torch.no_grad():  # FCOS's anchors are one point a feature-map cell: fixed for a fixed input size
            example = torch.zeros(1, 3, size, size)
            features = list(detector.backbone.eval()(example).values())
            anchors = detector.anchor_generator(ImageList(example, [(size, size)]), features)[0]
        self.register_buffer("anchors", anchors)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = list(self.detector.backbone(self.normalise(images)).values())
        head = self.detector.head(features)
        boxes = self.detector.box_coder.decode(head["bbox_regression"], self.anchors)
        boxes = boxes.clamp(0, self.size) / self.size  # [B, N, 4] corners, fractions of the image
        scores = torch.sqrt(torch.sigmoid(head["cls_logits"]) * torch.sigmoid(head["bbox_ctrness"]))  # [B, N, K]
        has_area = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])  # clamping may flatten a box
        scores = scores * has_area.unsqueeze(2).to(scores.dtype)
        return _strongest(boxes, scores.transpose(1, 2))


def _strongest(boxes: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The MAX_DETECTIONS strongest boxes that survive suppression, padded with zeros: tensor operations only, so
    that a batch exports and runs as one graph."""
    kept = _NonMaxSuppression.apply(boxes, scores)
    image, tag, box = kept[:, 0], kept[:, 1], kept[:, 2]
    surviving = torch.zeros_like(scores)
    surviving[image, tag, box] = scores[image, tag, box]
    top, index = surviving.flatten(1).topk(MAX_DETECTIONS, dim=1)  # [B, MAX_DETECTIONS], descending
    locations = scores.shape[2]
    chosen = boxes.gather(1, (index % locations).unsqueeze(2).expand(-1, -1, 4))
    chosen = chosen * (top > 0).unsqueeze(2).to(chosen.dtype)
    left_top_width_height = torch.cat([chosen[..., :2], chosen[..., 2:] - chosen[..., :2]], dim=2)
    return left_top_width_height, top, index // locations
