"""The segmentation head's loss: defective and good cells count alike, and cells outside the
image (a crop's padding) or only grazed by a mask's edge teach nothing."""

from __future__ import annotations

import torch

from models.anomaly import SegmentationHead, mask_to_grid, segmentation_loss


def test_padding_and_grazed_cells_do_not_count():
    cover = torch.zeros(1, 4, 4)
    cover[0, 0, 0] = 1.0  # one defective cell
    cover[0, 0, 1] = 0.1  # grazed by the mask: neither defective nor good
    valid = torch.ones(1, 4, 4, dtype=torch.bool)
    valid[0, 3] = False  # padding
    logits = torch.zeros(1, 4, 4)
    base = segmentation_loss(logits, cover, valid)
    noisy = logits.clone()
    noisy[0, 3] = 50.0  # whatever the head says on padding ...
    noisy[0, 0, 1] = -50.0  # ... or on a grazed cell
    assert torch.isclose(segmentation_loss(noisy, cover, valid), base)


def test_one_defective_cell_weighs_as_much_as_all_good_ones():
    cover = torch.zeros(1, 8, 8)
    cover[0, 0, 0] = 1.0
    valid = torch.ones(1, 8, 8, dtype=torch.bool)
    miss_defect = torch.full((1, 8, 8), -3.0)  # right on 63 good cells, wrong on the defect
    miss_good = torch.full((1, 8, 8), 3.0)
    miss_good[0, 0, 0] = 3.0  # right on the defect, wrong on every good cell
    a, b = segmentation_loss(miss_defect, cover, valid), segmentation_loss(miss_good, cover, valid)
    assert abs(a.item() - b.item()) < 0.35  # equal halves (the image term differs a little)


def test_head_maps_features_to_a_grid_of_logits_and_masks_to_cover():
    head = SegmentationHead(16).eval()
    assert head(torch.randn(2, 16, 5, 7)).shape == (2, 5, 7)
    mask = torch.zeros(40, 40, dtype=torch.bool)
    mask[:10, :20] = True
    grid = mask_to_grid(mask, (4, 4))
    assert grid[0, 0] == 1 and grid[0, 1] == 1 and grid[0, 2] == 0 and grid[1, 0] == 0
