"""A client that lost an answer and retries must not store the part twice (issue #14, item 6):
a request_id names one part on one line; a retry gets the first verdict, stored once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from inspector.store import Inspection
from inspector.store.session import session_factory
from tests.service.conftest import png_bytes

HEADERS = {"Content-Type": "image/png"}


def count(service) -> int:
    with session_factory(service.db_engine)() as s:
        return s.scalar(select(func.count()).select_from(Inspection))


def test_a_retry_with_the_same_request_id_gets_the_first_verdict_and_one_row(client, service):
    first = client.post("/v1/inspect?product=washer&line=L1&request_id=part-42", content=png_bytes(), headers=HEADERS)
    again = client.post("/v1/inspect?product=washer&line=L1&request_id=part-42", content=png_bytes(), headers=HEADERS)
    assert first.status_code == again.status_code == 200
    a, b = first.json(), again.json()
    assert a["inspection_id"] == b["inspection_id"] and a["verdict"] == b["verdict"]
    assert any("replayed" in f for f in b["flags"]) and not any("replayed" in f for f in a["flags"])
    assert count(service) == 1
    other_line = client.post("/v1/inspect?product=washer&line=L2&request_id=part-42", content=png_bytes(),
                             headers=HEADERS)  # fmt: skip
    plain = client.post("/v1/inspect?product=washer&line=L1", content=png_bytes(), headers=HEADERS)
    assert len({a["inspection_id"], other_line.json()["inspection_id"], plain.json()["inspection_id"]}) == 3
    assert count(service) == 3


def test_concurrent_retries_in_flight_share_one_answer(client, service):
    def post(_: int):
        return client.post("/v1/inspect?product=washer&request_id=burst-1", content=png_bytes("spot", 3),
                           headers=HEADERS)  # fmt: skip

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(post, range(6)))
    assert {r.status_code for r in answers} == {200}
    assert len({r.json()["inspection_id"] for r in answers}) == 1
    assert count(service) == 1 and len(service.worker.spool) == 0
