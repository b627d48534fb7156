from inspector.service.spool import Job, Spool


def test_pending_replays_whole_jobs_and_drops_interrupted_writes(tmp_path):
    spool = Spool(tmp_path)
    spool.put(Job(id="a", product="p"), b"one")
    spool.put(Job(id="b", product="p"), b"two")
    (tmp_path / ".tmp-c.json").write_text('{"id": "c"')  # killed while writing metadata: never accepted
    (tmp_path / "d.bin").write_bytes(b"orphan")  # killed before its metadata landed
    (tmp_path / "e.json").write_text("{broken")
    again = Spool(tmp_path)
    assert [j.id for j in again.pending()] == ["a", "b"] and len(again) == 2
    assert again.data(again.pending()[0]) == b"one"
    assert not (tmp_path / "d.bin").exists() and not (tmp_path / ".tmp-c.json").exists()
    assert (tmp_path / "e.bad").exists()  # kept for a person, never re-read
    again.done(again.pending()[0])
    assert [j.id for j in again.pending()] == ["b"]
