"""Manuals edited or added in the database reach the running station without a restart."""

from __future__ import annotations

from inspector.store.repo import add_manual_version
from inspector.store.session import session_factory
from tests.helpers.synthetic import MANUAL
from tests.service.conftest import png_bytes


def _post(client, product: str):
    return client.post(
        f"/v1/inspect?product={product}", content=png_bytes("scratch"), headers={"Content-Type": "image/png"}
    )


def test_an_edited_manual_and_a_new_product_are_used_at_once(client, service):
    sessions = session_factory(service.db_engine)
    assert _post(client, "bracket").status_code == 404  # unknown: no manual anywhere yet
    edited = MANUAL.format(product="washer").replace("Rule: reject any scratch.", "Rule: reject scratches over 2 mm.")
    with sessions() as s:
        add_manual_version(s, "washer", edited, "erik")
        add_manual_version(s, "bracket", MANUAL.format(product="bracket").replace("washer", "bracket"), "erik")
        s.commit()
    service.watcher.check()

    washer = _post(client, "washer").json()
    assert washer["verdict"] == "reject" and "over 2 mm" in washer["reason"]
    assert "manual changed since calibration" in washer["flags"]
    bracket = _post(client, "bracket")
    assert bracket.status_code == 200, bracket.text
    assert bracket.json()["verdict"] in ("accept", "review", "reject")


def test_an_unusable_manual_is_reported_once_and_the_product_goes_image_only(client, service, caplog):
    sessions = session_factory(service.db_engine)
    with sessions() as s:
        add_manual_version(s, "washer", "no front matter, no defects", "erik")
        s.commit()
    with caplog.at_level("ERROR"):
        assert service.watcher.sync_manuals(service.worker.engine) == ["washer"]
        assert service.watcher.sync_manuals(service.worker.engine) == []  # the next poll: nothing new to say
    assert sum("unusable" in r.message for r in caplog.records) == 1
    body = _post(client, "washer").json()
    assert body["image_only"] and "image-only" in body["flags"]
