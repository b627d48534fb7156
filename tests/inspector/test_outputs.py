import numpy as np
import pytest

from inspector.dataset import load_dataset
from inspector.engine import Engine
from inspector.outputs import collect, concat, with_turned_types
from inspector.parts.classifier import ClassifierPart


@pytest.fixture(scope="module")
def engine(trained_model, home):
    return Engine(trained_model, "cpu", cache_dir=home / "cache")


def test_types_over_turns_added_after_scoring_equal_those_collected_with_them_and_skip_the_view(
    engine, synthetic_root, monkeypatch
):
    """A test split is scored before val chooses typing over turns; adding the turns afterwards
    must give the station's numbers, and must not pay again for the pass it already made."""
    manual = engine.manual("washer")
    samples = load_dataset([synthetic_root]).split("test")[:20]
    part = engine.parts["classifier"]
    at_once = collect({"classifier": part}, manual, samples, 10**7, type_views=8)
    plain = collect({"classifier": part}, manual, samples, 10**7)
    assert plain.turned_types is None and at_once.turned_types.shape == (20, 8, 2)
    passes, run = [], ClassifierPart.run
    monkeypatch.setattr(ClassifierPart, "run", lambda self, v, p, m: passes.append(len(v)) or run(self, v, p, m))
    later = with_turned_types(plain, part, manual, 10**7, 8)
    assert passes == [16] * 7 + [4] * 7  # the seven turns of each batch, not the view again
    np.testing.assert_allclose(later.turned_types, at_once.turned_types, atol=1e-6)
    np.testing.assert_array_equal(later.types["classifier"], plain.types["classifier"])


def test_outputs_joined_over_runs_keep_turned_types_only_where_every_run_has_them(engine, synthetic_root):
    manual = engine.manual("washer")
    samples = load_dataset([synthetic_root]).split("test")[:8]
    part = engine.parts["classifier"]
    a = collect({"classifier": part}, manual, samples[:4], 10**7, type_views=8)
    b = collect({"classifier": part}, manual, samples[4:], 10**7, type_views=8)
    c = collect({"classifier": part}, manual, samples[4:], 10**7)
    both = concat([a, b])
    np.testing.assert_array_equal(both.turned_types, np.concatenate([a.turned_types, b.turned_types]))
    assert concat([a, c]).turned_types is None
    assert [s.path for s in both.samples] == [s.path for s in samples]
