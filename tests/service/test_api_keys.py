"""API keys: open until the first key exists; then required, hashed, and scoped to lines."""

from sqlalchemy import select

from inspector.store import ApiKey
from inspector.store.keys import create_api_key, revoke_api_key
from inspector.store.session import session_factory
from tests.service.conftest import png_bytes


def post(client, line, key=None):
    headers = {"Content-Type": "image/png", **({"X-API-Key": key} if key else {})}
    return client.post(f"/v1/inspect?product=washer&line={line}", content=png_bytes(), headers=headers)


def test_keys_are_required_once_one_exists_and_scoped_to_lines(client, service):
    assert post(client, "L1").status_code == 200  # a fresh station: open
    sessions = session_factory(service.db_engine)
    with sessions() as s:
        scoped = create_api_key(s, "line1-plc", ["L1"])
        anywhere = create_api_key(s, "mes")
        s.commit()
        assert scoped not in {k.key_sha256 for k in s.scalars(select(ApiKey))}  # only hashes are stored
    assert post(client, "L1").status_code == 401
    assert post(client, "L1", "insp_wrong").status_code == 401
    assert post(client, "L1", scoped).status_code == 200
    denied = post(client, "L2", scoped)
    assert denied.status_code == 403 and "line 'L2'" in denied.json()["error"]
    assert post(client, "L2", anywhere).status_code == 200
    with sessions() as s:
        revoke_api_key(s, "mes")
        s.commit()
    assert post(client, "L2", anywhere).status_code == 401  # at its next request: no grace period


def test_one_inspect_request_reads_the_keys_once(client, service, monkeypatch):
    """The key is checked at the door (before the body is read) and again for its line once the
    fields are known: the second check uses the keys the first one read."""
    sessions = session_factory(service.db_engine)
    with sessions() as s:
        key = create_api_key(s, "reads-once", ["L1"])
        s.commit()
    reads = []
    active = service.keys._active
    monkeypatch.setattr(service.keys, "_active", lambda: reads.append(1) or active())
    assert post(client, "L1", key).status_code == 200
    assert len(reads) == 1
    assert post(client, "L2", key).status_code == 403  # the line check still applies
    assert len(reads) == 2
