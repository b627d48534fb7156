import numpy as np
import pytest

from inspector.dataset import load_dataset
from inspector.engine import Engine
from inspector.evaluation import rows_typed
from inspector.outputs import SplitOutputs, collect, concat, with_turned_types
from inspector.parts.classifier import ClassifierPart
from models.card import Decision, PartScale, Thresholds


@pytest.fixture(scope="module")
def engine(trained_model, home):
    return Engine(trained_model, "cpu", cache_dir=home / "cache")


def test_types_over_turns_are_paid_for_only_on_the_rows_asked_and_the_rest_hold_the_view_alone(
    engine, synthetic_root, monkeypatch
):
    """Turning costs seven classifier passes per part, so training turns only the parts whose
    types it reads (val's defects, the parts the station does not accept); a part turned in one
    call keeps its types when others are turned later, and a part never turned is named from the
    view alone, as the station names a part it accepts."""
    manual = engine.manual("washer")
    samples = load_dataset([synthetic_root]).split("test")[:20]
    part = engine.parts["classifier"]
    plain = collect({"classifier": part}, manual, samples, 10**7)
    own = plain.types["classifier"]
    assert plain.turned_types is None
    passes, run = [], ClassifierPart.run
    monkeypatch.setattr(ClassifierPart, "run", lambda self, v, p, m: passes.append(len(v)) or run(self, v, p, m))
    every = with_turned_types(plain, part, manual, 10**7, 8, np.ones(20, bool))
    assert passes == [16] * 7 + [4] * 7  # the seven turns of each batch, not the view again
    np.testing.assert_allclose(every.turned_types[:, 0], own, atol=1e-6)
    rows = np.arange(20) % 3 == 0
    passes.clear()
    some = with_turned_types(plain, part, manual, 10**7, 8, rows)
    assert passes == [7] * 7
    np.testing.assert_allclose(
        some.turned_types[rows], every.turned_types[rows], atol=1e-5
    )  # other batches: float noise
    np.testing.assert_array_equal(some.turned_types[~rows], np.repeat(own[~rows, None], 8, axis=1))
    np.testing.assert_allclose(some.types_for("classifier", 8)[~rows], own[~rows], atol=1e-6)
    passes.clear()
    rest = with_turned_types(some, part, manual, 10**7, 4, ~rows)  # fewer views: the width turned before holds
    assert passes == [13] * 7
    np.testing.assert_allclose(rest.turned_types, every.turned_types, atol=1e-5)
    with pytest.raises(ValueError, match="turned over 4 views before, not 8"):
        with_turned_types(with_turned_types(plain, part, manual, 10**7, 4, rows), part, manual, 10**7, 8, rows)


def test_the_rows_typed_are_every_defect_and_each_part_a_decision_does_not_accept():
    target = np.array([0, 0, 0, 1, 2, 0])
    score = np.array([0.1, 0.6, 0.9, 0.1, 0.95, 0.4])
    out = SplitOutputs("tile", [], target, {"anomaly": score, "classifier": np.array([0.7, 0.1, 0.1, 0.1, 0.1, 0.2])})
    th = Thresholds(warn=0.5, reject=0.8, target_frr=0.01, n_good=100, guaranteed=True)
    by_anomaly = Decision(parts={"anomaly": PartScale()}, thresholds=th)
    by_classifier = Decision(parts={"classifier": PartScale()}, thresholds=th)
    assert rows_typed(out, by_anomaly).tolist() == [False, True, True, True, True, False]
    assert rows_typed(out, by_anomaly, by_classifier).tolist() == [True, True, True, True, True, False]


def test_outputs_joined_over_runs_keep_turned_types_only_where_every_run_has_them(engine, synthetic_root):
    manual = engine.manual("washer")
    samples = load_dataset([synthetic_root]).split("test")[:8]
    part = engine.parts["classifier"]
    a, b = (collect({"classifier": part}, manual, s, 10**7) for s in (samples[:4], samples[4:]))
    a, c = with_turned_types(a, part, manual, 10**7, 8, np.ones(4, bool)), b
    b = with_turned_types(b, part, manual, 10**7, 8, np.ones(4, bool))
    both = concat([a, b])
    np.testing.assert_array_equal(both.turned_types, np.concatenate([a.turned_types, b.turned_types]))
    assert concat([a, c]).turned_types is None
    assert [s.path for s in both.samples] == [s.path for s in samples]
