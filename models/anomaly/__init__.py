"""The anomaly branch: patch features of good parts in per-product memory banks (PatchCore),
nearest-neighbour anomaly maps, defect segmentation learnt from masks where a product has
them (a defect score from image labels where it has none), and defect typing from the anomalous region."""

from models.anomaly.bank import MemoryBanks, NearestSearch, bf16_is_fast, gaussian_blur, nearest_distance
from models.anomaly.coreset import greedy_coreset
from models.anomaly.extractor import PATCH_EXTRACTORS, PatchExtractor, create_patch_extractor
from models.anomaly.region_types import RegionTypeHead, mirrors, region_pool
from models.anomaly.segmentation import SegmentationHead, label_loss, mask_to_grid, segmentation_loss
from models.anomaly.views import view_shape

__all__ = [
    "PATCH_EXTRACTORS",
    "MemoryBanks",
    "NearestSearch",
    "PatchExtractor",
    "RegionTypeHead",
    "SegmentationHead",
    "bf16_is_fast",
    "create_patch_extractor",
    "gaussian_blur",
    "greedy_coreset",
    "label_loss",
    "mask_to_grid",
    "mirrors",
    "nearest_distance",
    "region_pool",
    "segmentation_loss",
    "view_shape",
]
