import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from inspector.engine import Engine
from inspector.errors import UnknownProductError
from inspector.images import load_image
from inspector.manual import parse_manual
from models.card import CARD_FORMAT
from tests.helpers.synthetic import MANUAL, make_image


@pytest.fixture(scope="module")
def engine(trained_model, home):
    return Engine(trained_model, "cpu", cache_dir=home / "cache")


def images(kind, n=6):
    rng = np.random.default_rng(123)
    return [np.repeat(make_image(kind, rng)[..., None], 3, 2) for _ in range(n)]


def test_batch_verdicts_with_scores_and_attention(engine):
    verdicts = engine.inspect_arrays("washer", images("spot") + images("ok"))
    assert len(verdicts) == 12
    spots, oks = verdicts[:6], verdicts[6:]
    assert sum(v.defect_type == "spot" for v in spots) >= 4
    assert sum(v.verdict == "accept" for v in oks) >= 4
    v = spots[0]
    assert set(v.class_scores) == {"ok", "scratch", "spot"} and abs(sum(v.class_scores.values()) - 1) < 1e-4
    assert v.attention is not None and v.attention.ndim == 2
    assert not v.image_only and v.latency_ms > 0


def test_missing_manual_gives_an_image_only_verdict(engine):
    engine.set_manual("washer", None)
    try:
        verdicts = engine.inspect_arrays("washer", images("scratch", 3) + images("ok", 3))
    finally:
        engine.set_manual("washer", parse_manual(MANUAL.format(product="washer")))
    assert all(v.image_only and "image-only" in v.flags and v.defect_type is None for v in verdicts)
    assert np.mean([v.defect_score for v in verdicts[:3]]) > np.mean([v.defect_score for v in verdicts[3:]])


def test_new_product_onboarded_by_manual_alone(engine):
    """A product the model never saw: its manual is enough to get named defects (thresholds flagged)."""
    engine.set_manual("washer-b", parse_manual(MANUAL.format(product="washer-b")))
    verdicts = engine.inspect_arrays("washer-b", images("scratch", 4))
    assert all("uncalibrated" in v.flags[0] for v in verdicts)
    assert all(v.product == "washer-b" and v.class_scores for v in verdicts)


def test_edited_manual_is_flagged_and_reembedded_once(engine):
    edited = MANUAL.format(product="washer").replace("round dark blob", "round dark blob or ring")
    engine.set_manual("washer", parse_manual(edited))
    try:
        v = engine.inspect_arrays("washer", images("spot", 1))[0]
        assert "manual changed since calibration" in v.flags
        assert len(engine.text._memo) >= 2  # the old and the new version, each embedded once
    finally:
        engine.set_manual("washer", parse_manual(MANUAL.format(product="washer")))


def test_unknown_product(engine):
    with pytest.raises(UnknownProductError, match="unknown product 'gear'; known: washer"):
        engine.inspect_arrays("gear", images("ok", 1))


def test_inspect_files_keeps_going_past_a_bad_file(engine, tmp_path, synthetic_root):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    good = next((synthetic_root / "washer" / "images" / "ok").iterdir())
    assert load_image(good).shape[2] == 3
    results = engine.inspect_files("washer", [bad, good])
    assert isinstance(results[0], Exception) and "bad.jpg" in str(results[0])
    assert results[1].verdict in ("accept", "review", "reject")


def test_cached_manual_embeddings_spare_loading_the_text_model(engine, trained_model, home):
    engine.inspect_arrays("washer", images("ok", 1))  # the washer manual's embedding is now in the cache
    fresh = Engine(trained_model, "cpu", cache_dir=home / "cache")
    assert fresh.inspect_arrays("washer", images("spot", 1))[0].class_scores
    assert fresh.text._encoder is None  # served from the cache: the text model was never loaded
    fresh.set_manual("washer-c", parse_manual(MANUAL.format(product="washer-c") + "\nA new line.\n"))
    fresh.inspect_arrays("washer-c", images("ok", 1))
    assert fresh.text._encoder is not None  # a manual never embedded before loads it


def test_a_format_1_checkpoint_still_serves(trained_model, tmp_path):
    """A classifier-only model saved before the card was typed: it loads and inspects."""

    old = tmp_path / "old"
    shutil.copytree(trained_model, old)
    (old / "anomaly.safetensors").unlink()
    card = json.loads((old / "card.json").read_text())
    c, washer = card["classifier"], card["products"]["washer"]
    fallback = {"warn": 0.3, "reject": 0.5, "target_frr": 0.0, "n_good": 0, "guaranteed": False}
    (old / "card.json").write_text(json.dumps({
        "format": 1, "created_at": card["created_at"], "backbone": c["backbone"], "input_size": c["input_size"],
        "text_encoder": card["text_encoder"], "fusion_config": c["fusion"],
        "calibration": {"class_temperature": c["class_temperature"], "defect_temperature": c["defect_temperature"],
                        "fallback": fallback, "image_only_fallback": fallback},
        "products": {"washer": {"classes": washer["classes"], "manual_sha256": washer["manual_sha256"],
                                "manual": washer["manual"], "thresholds": {**fallback, "reject": 0.6},
                                "image_only": fallback}},
    }))  # fmt: skip
    engine = Engine(old, "cpu")
    assert list(engine.parts) == ["classifier"] and engine.card.format == CARD_FORMAT
    spots = engine.inspect_arrays("washer", images("spot", 3))
    assert all(v.reject_threshold == 0.6 and v.anomaly_score is None for v in spots)
    assert sum(v.verdict == "reject" for v in spots) >= 2


def test_a_decision_pooled_by_the_mean_scores_parts_by_their_mean(trained_model, tmp_path):

    from models.card import PartScale
    from models.decision import scaled

    pooled = tmp_path / "pooled"
    shutil.copytree(trained_model, pooled)
    card = json.loads((pooled / "card.json").read_text())
    scales = {"classifier": {"transform": "logit", "center": -1.0, "spread": 2.0}, "anomaly": {"spread": 3.0}}
    card["products"]["washer"]["decision"] |= {"parts": scales, "pooling": "mean"}
    (pooled / "card.json").write_text(json.dumps(card))
    for v in Engine(pooled, "cpu").inspect_arrays("washer", images("spot", 2) + images("ok", 2)):
        parts = [
            scaled(v.classifier_score, PartScale(**scales["classifier"])),
            scaled(v.anomaly_score, PartScale(spread=3.0)),
        ]
        assert v.defect_score == pytest.approx(float(np.mean(parts)), abs=1e-6)


def test_a_verdict_missing_one_of_its_deciding_scores_is_flagged_uncalibrated(trained_model, tmp_path):
    """The threshold was set on every deciding score; one missing (here a segmentation head this
    model has not got) must not pass silently as a calibrated verdict."""

    partial = tmp_path / "partial"
    shutil.copytree(trained_model, partial)
    card = json.loads((partial / "card.json").read_text())
    decision = card["products"]["washer"]["decision"]
    decision["parts"] |= {"segmentation": {"transform": "logit", "center": 0.0, "spread": 1.0}}
    decision["pooling"] = "mean"
    (partial / "card.json").write_text(json.dumps(card))
    verdicts = Engine(partial, "cpu").inspect_arrays("washer", images("spot", 2) + images("ok", 2))
    flagged = "uncalibrated: deciding score segmentation missing"
    assert all(any(f.startswith(flagged) for f in v.flags) for v in verdicts)
    complete = Engine(trained_model, "cpu").inspect_arrays("washer", images("ok", 1))[0]
    assert not any(f.startswith("uncalibrated") for f in complete.flags)


def test_a_decision_typed_by_both_parts_names_the_type_of_their_mean(trained_model, tmp_path):

    by = {}
    for typing in ("classifier", "anomaly", "both"):
        folder = tmp_path / typing
        shutil.copytree(trained_model, folder)
        card = json.loads((folder / "card.json").read_text())
        card["products"]["washer"]["decision"]["typing"] = typing
        (folder / "card.json").write_text(json.dumps(card))
        by[typing] = Engine(folder, "cpu").inspect_arrays("washer", images("spot", 3))
    for c, a, b in zip(by["classifier"], by["anomaly"], by["both"], strict=True):
        assert c.class_scores != a.class_scores  # two parts that type differently, or the test tells nothing
        for d in ("scratch", "spot"):  # P(defect) * P(type): the defect score does not depend on the typing
            assert b.class_scores[d] == pytest.approx((c.class_scores[d] + a.class_scores[d]) / 2, abs=2e-6)


def typed_engines(model: Path, tmp_path: Path) -> tuple[Engine, Engine]:
    """The model twice: naming defect types from the view alone, and over all eight turns and mirrors."""
    for name, views in (("plain", 1), ("turned", 8)):
        shutil.copytree(model, tmp_path / name)
        card = json.loads((tmp_path / name / "card.json").read_text())
        card["products"]["washer"]["decision"] |= {"typing": "classifier", "type_views": views}
        (tmp_path / name / "card.json").write_text(json.dumps(card))
    return Engine(tmp_path / "plain", "cpu"), Engine(tmp_path / "turned", "cpu")


def test_a_decision_typed_over_turns_types_only_the_parts_it_does_not_accept_from_their_turns(
    trained_model, tmp_path, monkeypatch
):
    """Seven more classifier passes buy the mean of eight guesses at a defect's type; an accepted
    part names no type, so it must not pay for them, and its verdict is the same either way."""

    from inspector.parts.classifier import ClassifierPart

    plain, turned = typed_engines(trained_model, tmp_path)
    batch = images("spot", 3) + images("scratch", 3) + images("ok", 4)
    before = plain.inspect_arrays("washer", batch)
    # the classifier's types on each view as it is, mirrored and turned, for the expected mean (on the
    # view: a transposed image resized rounds differently from a resized image transposed)
    manual, part = plain.manual("washer"), plain.parts["classifier"]
    views = [plain.prepare(im, "washer")["classifier"] for im in batch]
    eight = [[m for a in (v, v.transpose(-2, -1)) for m in (a, a.flip(-1), a.flip(-2), a.flip((-2, -1)))]
             for v in views]  # fmt: skip
    types = [np.mean([o.type_probs for o in part.run(each, "washer", manual)], 0) for each in eight]
    passes, run = [], ClassifierPart.run
    monkeypatch.setattr(ClassifierPart, "run", lambda self, v, p, m: passes.append(len(v)) or run(self, v, p, m))
    after = turned.inspect_arrays("washer", batch)
    typed = [i for i, v in enumerate(after) if v.verdict != "accept"]
    assert 0 < len(typed) < len(batch)  # parts of both kinds, or the test tells nothing
    assert passes == [len(batch)] + [len(typed)] * 7
    assert any(before[i].class_scores != after[i].class_scores for i in typed)  # the turns changed something
    defects = ("scratch", "spot")
    for i, (a, b) in enumerate(zip(before, after, strict=True)):
        assert a.defect_score == b.defect_score and a.verdict == b.verdict
        if i not in typed:
            assert a.class_scores == b.class_scores
            continue
        p_defect = 1 - b.class_scores["ok"]  # class scores are P(defect) * P(type), rounded to 1e-6
        assert [b.class_scores[d] for d in defects] == pytest.approx(p_defect * types[i], abs=2e-6)
        assert b.defect_type == defects[int(np.argmax(types[i]))]


def test_parts_due_before_their_turns_could_end_are_typed_from_the_view_alone_and_flagged(
    trained_model, tmp_path, monkeypatch
):
    """On a line the verdict is due within the PLC's inspect window; a late one is a fail-safe
    reject without its type, and three in a row fault the station. Seven more classifier
    passes on a CPU outlast a 100 ms window, so they are made only where they fit."""
    import time

    from inspector.parts.classifier import ClassifierPart

    plain, turned = typed_engines(trained_model, tmp_path)
    batch = images("spot", 3) + images("scratch", 3) + images("ok", 4)
    prepared, sizes = [turned.prepare(im, "washer") for im in batch], [(im.shape[1], im.shape[0]) for im in batch]
    before = plain.inspect_arrays("washer", batch)
    passes, run = [], ClassifierPart.run
    monkeypatch.setattr(ClassifierPart, "run", lambda self, v, p, m: passes.append(len(v)) or run(self, v, p, m))

    due = turned.inspect_prepared("washer", prepared, sizes, answer_by=time.perf_counter())
    assert passes == [len(batch)]  # no turns: they could not end in time
    typed = [i for i, v in enumerate(due) if v.verdict != "accept"]
    assert 0 < len(typed) < len(batch)
    for i, (a, b) in enumerate(zip(before, due, strict=True)):
        assert (a.verdict, a.defect_type, a.class_scores) == (b.verdict, b.defect_type, b.class_scores)
        flagged = [f for f in b.flags if f.startswith("typed from the view alone")]
        assert flagged == (["typed from the view alone: 7 more passes would miss the window"] if i in typed else [])

    passes.clear()
    in_time = turned.inspect_prepared("washer", prepared, sizes, answer_by=time.perf_counter() + 600)
    assert passes == [len(batch)] + [len(typed)] * 7
    assert not any(f.startswith("typed from the view alone") for v in in_time for f in v.flags)
    assert [v.class_scores for v in in_time] == [v.class_scores for v in turned.inspect_arrays("washer", batch)]


def test_a_classifier_calibrated_in_bfloat16_is_scored_in_bfloat16_on_any_device(engine, trained_model, tmp_path):
    """Its thresholds hold only for the numbers they were set on: a model trained on a GPU (bf16)
    and served on a CPU, or the other way round, keeps the numerics written in its card."""

    from inspector.parts.classifier import ClassifierPart

    folder = tmp_path / "bf16"
    shutil.copytree(trained_model, folder)
    card = json.loads((folder / "card.json").read_text())
    assert card["classifier"]["precision"] == "float32"  # trained here, on the CPU
    card["classifier"]["precision"] = "bfloat16"
    (folder / "card.json").write_text(json.dumps(card))
    served = Engine(folder, "cpu", cache_dir=tmp_path / "cache").inspect_arrays("washer", images("spot", 3))
    part = engine.parts["classifier"]
    views = [part.view(im, "washer") for im in images("spot", 3)]
    told = ClassifierPart(part.model, part.encoder, part.bank, part.device, precision="bfloat16")
    by_hand = told.run(views, "washer", engine.manual("washer"))
    in_float32 = part.run(views, "washer", engine.manual("washer"))
    got = np.array([v.classifier_score for v in served])
    bf16, fp32 = (np.array([o.scores["classifier"] for o in run]) for run in (by_hand, in_float32))
    # bf16 kernels round differently from run to run (about 1e-3 here), so: nearer bf16 than float32
    assert np.abs(got - bf16).max() < np.abs(got - fp32).max()


def test_parts_run_side_by_side_where_their_threads_fit_the_cores_and_say_the_same(trained_model, home, monkeypatch):
    """A station that gave the model one thread per core it may use (a PLC beside it) runs the
    classifier and the anomaly part at once, each on a core; its verdicts are the ones made in turn."""
    import threading

    import torch

    from inspector import engine as engine_module

    monkeypatch.setattr(engine_module, "available_cores", lambda: 2)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        side = Engine(trained_model, "cpu", cache_dir=home / "cache")
        torch.set_num_threads(2)
        alone = Engine(trained_model, "cpu", cache_dir=home / "cache")
    finally:
        torch.set_num_threads(before)
    assert set(side.parts) == {"classifier", "anomaly"}
    assert side._side_by_side is not None and alone._side_by_side is None  # 2 parts x 2 threads > 2 cores
    ran_on: dict[str, str] = {}
    for name, part in side.parts.items():
        run = part.run

        def spy(*args, _run=run, _name=name):
            ran_on[_name] = threading.current_thread().name
            return _run(*args)

        monkeypatch.setattr(part, "run", spy)
    ims = images("spot", 3) + images("ok", 3)
    a, b = side.inspect_arrays("washer", ims), alone.inspect_arrays("washer", ims)
    assert len(set(ran_on.values())) == 2 and all(n.startswith("part") for n in ran_on.values())
    assert [(v.verdict, v.defect_type) for v in a] == [(v.verdict, v.defect_type) for v in b]
    np.testing.assert_allclose([v.defect_score for v in a], [v.defect_score for v in b], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose([v.anomaly_score for v in a], [v.anomaly_score for v in b], rtol=1e-4, atol=1e-5)
