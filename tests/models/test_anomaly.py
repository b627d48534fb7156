"""The anomaly branch on real images: a memory bank of good solar cells (the demo's real
electroluminescence images) flags a pasted scratch and its map peaks where the scratch is."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspector.demo import elpv_root
from inspector.images import load_image
from inspector.parts.anomaly import AnomalyPart, view_of
from models.anomaly import (
    MemoryBanks,
    NearestSearch,
    bf16_is_fast,
    create_patch_extractor,
    gaussian_blur,
    greedy_coreset,
    nearest_distance,
    view_shape,
)
from models.card import AnomalyView
from models.transforms import normalize, resize, standardise, to_float


@pytest.fixture(scope="module")
def cells() -> list[np.ndarray]:
    """24 good monocrystalline cells (expert label 0), 128 px: real, small, fast."""
    root = elpv_root()
    good = []
    for line in (root / "labels.csv").read_text().splitlines():
        path, prob, kind = line.split()
        if float(prob) == 0 and kind == "mono":
            good.append(load_image(root / path))
        if len(good) == 24:
            break
    return [resize(im, 128).permute(1, 2, 0).numpy() for im in good]


def scratch(image: np.ndarray, row: int, col: int) -> np.ndarray:
    """A dark diagonal scratch, 14 px long and 2 px wide, starting at (row, col)."""
    out = image.copy()
    for k in range(14):
        out[row + k, col + k : col + k + 2] = 10
    return out


# exact float32; the search in bf16 (CPUs with bf16 units); and the features extracted in bf16 too
@pytest.mark.parametrize(("low_precision", "precision"), [(False, "float32"), (True, "float32"), (True, "bfloat16")])
def test_bank_flags_a_pasted_scratch_and_its_map_peaks_on_it(cells, low_precision, precision):
    torch.manual_seed(0)
    extractor = create_patch_extractor("efficientnet_lite0")
    part = AnomalyPart({extractor.name: extractor}, {}, {}, {}, None, torch.device("cpu"))
    view = AnomalyView(resize="fit", size=128, precision=precision)

    def feats(images):
        with torch.inference_mode():
            (_, f), *_ = part.features([view_of(im, view, extractor) for im in images], view)
        return f

    train, test = cells[:16], cells[16:]
    pool = feats(train).permute(0, 2, 3, 1).reshape(-1, extractor.dim)
    banks = MemoryBanks(extractor.dim, low_precision=low_precision)
    banks.add("cell", pool[greedy_coreset(pool, len(pool) // 4)])
    clean = banks(feats(test), "cell")  # [8, 16, 16]
    spots = [(40 + 7 * i, 30 + 6 * i) for i in range(len(test))]
    scratched = banks(feats([scratch(im, r, c) for im, (r, c) in zip(test, spots, strict=True)]), "cell")
    clean_scores, scratch_scores = clean.flatten(1).max(1).values, scratched.flatten(1).max(1).values
    assert scratch_scores.min() > clean_scores.max()  # every scratched cell above every clean one
    for amap, (r, c) in zip(scratched, spots, strict=True):
        peak = divmod(int(amap.argmax()), amap.shape[1])  # (row, col) on the stride-8 grid
        assert abs(peak[0] * 8 + 4 - (r + 7)) <= 12 and abs(peak[1] * 8 + 4 - (c + 8)) <= 12


def test_a_standardised_view_scores_another_exposure_of_a_good_part_as_good(cells):
    """A bank of good cells under one exposure, asked about other good cells photographed darker
    and flatter: standardised, each scores as it does under the bank's exposure, and a pasted
    scratch still stands out."""
    torch.manual_seed(0)
    extractor = create_patch_extractor("efficientnet_lite0")
    part = AnomalyPart({extractor.name: extractor}, {}, {}, {}, None, torch.device("cpu"))
    train, test = cells[:16], cells[16:]
    dim = [(im.astype(np.float32) * 0.55 + 25).astype(np.uint8) for im in test]
    spots = [(40 + 7 * i, 30 + 6 * i) for i in range(len(test))]
    marked = [scratch(im, r, c) for im, (r, c) in zip(dim, spots, strict=True)]

    def scores(standardise: bool) -> dict[str, torch.Tensor]:
        view = AnomalyView(resize="fit", size=128, standardise=standardise)

        def feats(images):
            with torch.inference_mode():
                (_, f), *_ = part.features([view_of(im, view, extractor) for im in images], view)
            return f

        pool = feats(train).permute(0, 2, 3, 1).reshape(-1, extractor.dim)
        banks = MemoryBanks(extractor.dim)
        banks.add("cell", pool[greedy_coreset(pool, len(pool) // 4)])
        return {k: banks(feats(v), "cell").flatten(1).max(1).values for k, v in
                {"clean": test, "dim": dim, "marked": marked}.items()}  # fmt: skip

    raw, std = scores(False), scores(True)
    # standardised, a cell scores as it did under the bank's own exposure (up to uint8 rounding)
    assert (std["dim"] - std["clean"]).abs().max() < 0.5 * (raw["dim"] - raw["clean"]).abs().max()
    assert std["marked"].min() > std["dim"].max()  # and a scratch still stands out


def test_standardise_removes_exposure_and_keeps_a_flat_image_flat(cells):
    x = to_float(resize(cells[0], 64)).unsqueeze(0)
    darker = x * 0.5 + 0.1
    assert torch.allclose(standardise(x), standardise(darker), atol=1e-4)
    assert abs(standardise(x).mean().item() - 0.5) < 1e-4 and abs(standardise(x).std().item() - 0.25) < 1e-3
    flat = torch.full((1, 3, 8, 8), 0.3) + torch.randn(1, 3, 8, 8) * 1e-4
    assert standardise(flat).sub(0.5).abs().max() < 0.01  # its noise is not blown up to full contrast


def test_coreset_covers_every_cluster_that_random_sampling_would_miss():
    g = torch.Generator().manual_seed(0)
    common = torch.randn(2000, 8, generator=g)
    rare = torch.randn(5, 8, generator=g) * 0.1 + 20  # a rare but normal pattern
    x = torch.cat([common, rare])
    chosen = greedy_coreset(x, 20)
    assert (chosen >= 2000).any()  # the farthest-point rule reaches the rare cluster at once
    assert len(set(chosen.tolist())) == 20


def test_views_keep_the_shape_or_fit_the_square():
    fit = AnomalyView(resize="fit", size=448)
    assert view_shape(300, 600, fit, 16) == (448, 448)
    scaled = AnomalyView(resize="scale", scale=1.0, size=640)
    assert view_shape(250, 600, scaled, 16) == (256, 608)  # aspect kept, multiples of 16
    assert view_shape(2500, 6000, scaled, 16) == (272, 640)  # far larger than the bank's parts: shrunk


def test_blur_keeps_the_map_shape_and_mass():
    x = torch.zeros(1, 9, 9)
    x[0, 4, 4] = 1
    y = gaussian_blur(x, 1.0)
    assert y.shape == x.shape and abs(float(y.sum()) - 1) < 1e-5 and float(y[0, 4, 4]) < 1


@pytest.mark.parametrize("chunk_elems", [1, 7 * 50, 1 << 20])  # one row, uneven blocks, one block
def test_nearest_distance_is_the_brute_force_minimum_whatever_the_block(chunk_elems):
    g = torch.Generator().manual_seed(0)
    queries, bank = torch.randn(103, 24, generator=g), torch.randn(50, 24, generator=g)
    expected = torch.cdist(queries, bank).min(1).values
    got = nearest_distance(queries, bank, chunk_elems=chunk_elems)
    assert got.shape == (103,)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert nearest_distance(queries[:0], bank).shape == (0,)


@pytest.mark.parametrize("chunk_elems", [1, 50 * 999, 1 << 22])  # 32 rows at a time, uneven blocks, one block
def test_the_bf16_search_finds_the_nearest_row_or_one_within_its_rounding(chunk_elems):
    """Patch-like features (far from zero, in clusters, queries near bank rows): the distance is the
    exact one for almost every query, and otherwise at most 0.5 % long, never short."""
    g = torch.Generator().manual_seed(0)
    centres = 3 + torch.randn(40, 64, generator=g)
    bank = centres[torch.randint(40, (999,), generator=g)] + 0.3 * torch.randn(999, 64, generator=g)
    queries = bank[torch.randint(999, (700,), generator=g)] + 0.1 * torch.randn(700, 64, generator=g)
    exact = torch.cdist(queries.double(), bank.double()).min(1).values.float()
    got = NearestSearch(bank, low_precision=True, chunk_elems=chunk_elems)(queries)
    assert got.shape == (700,)
    assert bool((got >= exact * (1 - 1e-5)).all()) and bool((got <= exact * 1.005).all())
    assert float(((got - exact).abs() <= 1e-5 * exact).float().mean()) > 0.95


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "fast"), [(True, False, True), (False, True, True), (False, False, False)]
)
def test_bf16_is_fast_on_amx_or_avx512_bf16_cpus_only(monkeypatch, amx, avx512_bf16, fast):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert bf16_is_fast(torch.device("cpu")) is fast
    assert MemoryBanks(8).low_precision is fast
    assert not bf16_is_fast(torch.device("cuda")) and not bf16_is_fast(torch.device("meta"))


@pytest.mark.parametrize("low_precision", [False, True])
@pytest.mark.parametrize("inference", [False, True])
def test_a_search_split_over_threads_gives_the_same_distances(low_precision, inference):
    g = torch.Generator().manual_seed(3)
    bank, queries = torch.randn(500, 24, generator=g), torch.randn(700, 24, generator=g)
    with torch.inference_mode(inference):
        alone = NearestSearch(bank, low_precision, chunk_elems=32 * 500, workers=1)(queries)
        split = NearestSearch(bank, low_precision, chunk_elems=32 * 500, workers=3)(queries)
    assert torch.equal(alone, split) and split.shape == (700,)


def test_features_are_extracted_in_the_numerics_the_view_names_on_any_cpu(cells):
    """A bank built in bf16 is searched with bf16 features even on a CPU without bf16 units:
    its thresholds hold only for the numbers they were calibrated on."""
    extractor = create_patch_extractor("efficientnet_lite0")
    part = AnomalyPart({extractor.name: extractor}, {}, {}, {}, None, torch.device("cpu"))
    x = torch.stack([resize(im, 128) for im in cells[:2]])

    def extracted(precision):
        view = AnomalyView(resize="fit", size=128, precision=precision)
        with torch.inference_mode():
            (_, f), *_ = part.features(list(x), view)
        return f

    with torch.inference_mode():
        in_bf16 = extractor(normalize(to_float(x), extractor.mean, extractor.std), "bfloat16")
        in_fp32 = extractor(normalize(to_float(x), extractor.mean, extractor.std))
    assert torch.equal(extracted("bfloat16"), in_bf16) and torch.equal(extracted("float32"), in_fp32)
    assert not torch.equal(in_bf16, in_fp32)


def test_banks_search_in_bf16_only_where_the_cpu_has_bf16_units():
    assert MemoryBanks(8).low_precision == bf16_is_fast(torch.device("cpu"))
    assert not MemoryBanks(8, device="meta").low_precision and not MemoryBanks(8, low_precision=False).low_precision


def test_coreset_goes_on_from_a_given_start():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(500, 16, generator=g)
    start = torch.tensor([3, 77, 250])
    chosen = greedy_coreset(x, 40, start=start)
    assert chosen[:3].tolist() == start.tolist() and len(set(chosen.tolist())) == 40
    # each later row is the one farthest from all rows chosen before it (in the same projection)
    assert greedy_coreset(x, 40, start=chosen[:10]).tolist() == chosen.tolist()
    assert greedy_coreset(x, 40, start=greedy_coreset(x, 40)[:1]).tolist() == greedy_coreset(x, 40).tolist()
