from inspector.cli import main


def test_db_upgrade_then_current(fresh_db_url, capsys):
    assert main(["db", "current", "--url", fresh_db_url]) == 0
    assert "revision none" in capsys.readouterr().out
    assert main(["db", "upgrade", "--url", fresh_db_url]) == 0
    assert main(["db", "current", "--url", fresh_db_url]) == 0
    assert "(up to date)" in capsys.readouterr().out.splitlines()[-1]


def test_unreachable_database_is_one_line(capsys):
    assert main(["db", "current", "--url", "postgresql+psycopg://nobody@127.0.0.1:1/none"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("inspector: error:") and "Traceback" not in err and err.count("\n") == 1


def test_bad_url_is_one_line(capsys):
    assert main(["db", "current", "--url", "mysql://x"]) == 2
    assert "only sqlite:/// and postgresql+psycopg:// are supported" in capsys.readouterr().err
