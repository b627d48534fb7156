"""The simulated line used by the demo: a real server on 127.0.0.1, real HTTP, rows stored."""

from sqlalchemy import func, select

from inspector.dataset import load_dataset
from inspector.service.replay import replay, running
from inspector.store import Inspection
from inspector.store.session import session_factory


def test_replay_through_a_running_station(service, synthetic_root):
    parts = [("washer", s.path) for s in load_dataset(synthetic_root).split("test")[:4]]
    seen = []
    with running(service) as url:
        answers = replay(url, parts, rate=50, line="L8", on_result=lambda p, a: seen.append(p))
    assert [a["verdict"] in ("accept", "review", "reject") for a in answers] == [True] * 4
    assert seen == [p for _, p in parts]
    with session_factory(service.db_engine)() as s:
        assert s.scalar(select(func.count()).select_from(Inspection).where(Inspection.line == "L8")) == 4
