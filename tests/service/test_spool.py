from inspector.service.spool import Job, Spool


def test_pending_replays_whole_jobs_and_drops_interrupted_writes(tmp_path):
    spool = Spool(tmp_path)
    spool.put(Job(id="a", product="p"), b"one\ntwo")
    spool.put(Job(id="b", product="p"), b"two")
    (tmp_path / ".tmp-c.job").write_bytes(b'{"id": "c"')  # killed while writing: never accepted
    (tmp_path / "e.job").write_bytes(b"{broken\n...")
    again = Spool(tmp_path)
    assert [j.id for j in again.pending()] == ["a", "b"] and len(again) == 2
    assert again.data(again.pending()[0]) == b"one\ntwo"  # the bytes after the metadata line, newlines and all
    assert not (tmp_path / ".tmp-c.job").exists()
    assert (tmp_path / "e.bad").exists()  # kept for a person, never re-read
    again.done(again.pending()[0])
    assert [j.id for j in again.pending()] == ["b"]
