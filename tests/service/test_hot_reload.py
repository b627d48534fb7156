"""The station follows the champion: a promotion switches models under load, nothing dropped,
every verdict stored with the model that made it."""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from inspector.store import Inspection, ModelVersion
from inspector.store.repo import promote_model, register_model
from inspector.store.session import session_factory
from tests.service.conftest import png_bytes


def test_promotion_switches_models_under_concurrent_requests(client, service, trained_model, tmp_path):
    second = tmp_path / "models" / "second"
    shutil.copytree(trained_model, second)
    sessions = session_factory(service.db_engine)
    service.watcher.interval_s = 0.1
    stop = threading.Event()

    def post(i: int) -> dict:
        r = client.post(
            "/v1/inspect?product=washer", content=png_bytes("spot", i), headers={"Content-Type": "image/png"}
        )
        assert r.status_code == 200, r.text
        return r.json()

    def load(n0: int) -> list[dict]:
        out, i = [], n0
        while not stop.is_set():
            out.append(post(i))
            i += 1
        return out

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(load, k * 10_000) for k in range(4)]
        time.sleep(1.5)
        with sessions() as s:
            mv = register_model(s, f"second@{time.time()}", str(second), {})
            promote_model(s, mv.id, "test")
            s.commit()
            new_id = mv.id
        deadline = time.monotonic() + 60
        while service.worker.engine.model_dir.resolve() != second.resolve() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)
        stop.set()
        answers = [a for f in futures for a in f.result()]

    assert service.worker.engine.model_dir.resolve() == second.resolve()
    with sessions() as s:
        names = dict(s.execute(select(ModelVersion.id, ModelVersion.name)).all())
        stored = {r.uuid: r for r in s.scalars(select(Inspection))}
    assert len(stored) == len(answers)
    by_model = {}
    for a in answers:
        row = stored[a["inspection_id"]]
        assert names[row.model_version_id] == a["model_version"]  # the row names the model that answered
        by_model.setdefault(row.model_version_id, 0)
        by_model[row.model_version_id] += 1
    assert len(by_model) == 2 and by_model.get(new_id, 0) > 0, by_model
