"""Every registered fusion variant, on tiny tensors (timm-style: parametrised over the registry)."""

import pytest
import torch

from models import CrossModalClassifier, FusionConfig, list_fusions
from models.losses import DefectLoss

B, N, C, DI, DT = 3, 6, 4, 32, 16


def make(name: str, **kw) -> CrossModalClassifier:
    return CrossModalClassifier(FusionConfig(fusion=name, image_dim=DI, text_dim=DT, hidden_dim=24, heads=4, **kw))


def batch():
    tokens = torch.randn(B, N, DI)
    text = torch.randn(B, C, DT)
    mask = torch.ones(B, C, dtype=torch.bool)
    mask[1, 3] = False  # product of row 1 has one class fewer
    return tokens, tokens.mean(1), text, mask


def test_all_five_variants_are_registered():
    assert set(list_fusions()) == {"concat", "late", "gated", "cross_attention", "low_rank"}


@pytest.mark.parametrize("name", list_fusions())
def test_shapes_padding_and_no_nans(name):
    out = make(name).eval()(*batch())  # eval: attention dropout off
    assert out.class_logits.shape == (B, C) and out.defect_logit.shape == (B,)
    assert torch.isneginf(out.class_logits[1, 3])
    assert torch.isfinite(out.class_logits[0]).all() and torch.isfinite(out.defect_logit).all()
    if name == "cross_attention":
        assert out.attention.shape == (B, C, N)
        torch.testing.assert_close(out.attention.sum(-1), torch.ones(B, C))


@pytest.mark.parametrize("name", list_fusions())
def test_gradients_reach_both_modalities(name):
    model = make(name, text_dropout=0.0)
    tokens, _pooled, text, mask = batch()
    tokens.requires_grad_(True)
    text.requires_grad_(True)
    out = model(tokens, tokens.mean(1), text, mask)
    DefectLoss()(out, torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1])).backward()
    assert text.grad.abs().sum() > 0, "no gradient reaches the text input"
    assert tokens.grad.abs().sum() > 0, "no gradient reaches the image input"
    for pname, p in model.named_parameters():
        if pname.startswith("fusion.") and ("text" in pname or "query" in pname or "image" in pname):
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{pname} got no gradient"


@pytest.mark.parametrize("name", list_fusions())
def test_class_scores_depend_on_the_description(name):
    model = make(name).eval()
    tokens, pooled, text, mask = batch()
    a = model(tokens, pooled, text, mask).class_logits
    b = model(tokens, pooled, text.flip(1), mask.flip(1)).class_logits
    other = model(tokens, pooled, torch.randn_like(text), mask).class_logits
    assert not torch.allclose(a[0], other[0])  # scores come from the descriptions, not fixed output slots
    torch.testing.assert_close(a[0], b[0].flip(0), rtol=1e-4, atol=1e-4)  # permuting classes permutes scores


@pytest.mark.parametrize("name", list_fusions())
def test_eval_is_deterministic_and_state_dict_round_trips(name):
    model = make(name).eval()
    x = batch()
    first = model(*x).class_logits
    clone = make(name)
    clone.load_state_dict(model.state_dict())
    torch.testing.assert_close(first, model(*x).class_logits)
    torch.testing.assert_close(first, clone.eval()(*x).class_logits)


def test_dropped_text_path_gives_a_verdict_and_trains():
    model = make("cross_attention", text_dropout=1.0)
    _tokens, pooled, _text, _mask = batch()
    logit = model.image_only_defect_logit(pooled)
    assert logit.shape == (B,) and torch.isfinite(logit).all()
    logit.sum().backward()
    assert model.defect_head.no_text.grad.abs().sum() > 0  # the "no manual" vector is learned
