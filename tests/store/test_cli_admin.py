"""inspector keys / users on a real SQLite store: what an administrator types and reads."""

from __future__ import annotations

import io

from inspector.cli import main


def test_keys_are_added_listed_and_revoked(tmp_path, capsys):
    home = ["--home", str(tmp_path)]
    assert main(["keys", "add", "press-1", "--line", "L1", *home]) == 0
    key = capsys.readouterr().out.splitlines()[0]
    assert main(["keys", "add", "press-2", *home]) == 0
    assert main(["keys", "revoke", "press-2", *home]) == 0
    capsys.readouterr()
    assert main(["keys", "list", *home]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split()[:2] == ["press-1", f"{key[:12]}…"] and listed[0].endswith("lines: L1")
    assert listed[1].split()[0] == "press-2" and "revoked" in listed[1] and listed[1].endswith("lines: all")
    assert key not in "\n".join(listed)  # a listing never shows a key
    assert main(["keys", "revoke", "press-2", *home]) == 2  # no active key of that name: a clear error


def test_users_are_added_and_listed(tmp_path, capsys, monkeypatch):
    home = ["--home", str(tmp_path)]
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-enough\n"))
    assert main(["users", "add", "olga", *home]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("an0ther-one\n"))
    assert main(["users", "add", "erik", "--role", "engineer", *home]) == 0
    capsys.readouterr()
    assert main(["users", "list", *home]) == 0
    assert [line.split() for line in capsys.readouterr().out.splitlines()] == [
        ["erik", "engineer", "active"],
        ["olga", "operator", "active"],
    ]
