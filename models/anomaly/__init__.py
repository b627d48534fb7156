"""The anomaly branch: patch features of good parts in per-product memory banks (PatchCore),
nearest-neighbour anomaly maps, and defect typing from the anomalous region."""

from models.anomaly.bank import MemoryBanks, gaussian_blur, nearest_distance
from models.anomaly.coreset import greedy_coreset
from models.anomaly.extractor import PATCH_EXTRACTORS, PatchExtractor, create_patch_extractor
from models.anomaly.region_types import RegionTypeHead, region_pool
from models.anomaly.views import view_shape

__all__ = [
    "PATCH_EXTRACTORS",
    "MemoryBanks",
    "PatchExtractor",
    "RegionTypeHead",
    "create_patch_extractor",
    "gaussian_blur",
    "greedy_coreset",
    "nearest_distance",
    "region_pool",
    "view_shape",
]
