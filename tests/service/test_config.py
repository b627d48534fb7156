"""Station configuration from a TOML file, and one-line errors for a broken one."""

from inspector.cli import main
from inspector.settings import load_settings

GOOD = """
home = "{home}"

[service]
port = 9001
line = "L4"
station = "S2"
decode_threads = 4
watch = "{home}/drop"
mqtt_host = "127.0.0.1"

[service.camera]
source = "0"
product = "pcb"
mode = "trigger"

[model]
device = "cpu"
"""


def test_toml_config_fills_every_section(tmp_path):
    f = tmp_path / "station.toml"
    f.write_text(GOOD.format(home=tmp_path))
    s = load_settings(f)
    assert (s.service.port, s.service.line, s.service.camera.mode, s.model.device) == (9001, "L4", "trigger", "cpu")
    assert s.service.watch == tmp_path / "drop" and s.home == tmp_path and s.service.decode_threads == 4


def test_broken_configs_are_one_line_errors(tmp_path, capsys):
    cases = {
        "syntax.toml": ("[service\nport = 1", "not valid TOML"),
        "type.toml": ("[service]\nport = 'eighty'", "service.port"),
        "camera.toml": ("[service.camera]\nsource = '0'\nproduct = 'x'\nmode = 'sometimes'", "service.camera.mode"),
        "trigger.toml": ("[service.camera]\nsource = '0'\nproduct = 'x'\nmode = 'trigger'", "needs an MQTT broker"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        assert main(["serve", "--config", str(tmp_path / name), "--home", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main(["serve", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err
