"""Config: one TOML file plus CALLFLOW_* variables; wrong values name the key and the expected form."""

import pytest

from callflow import config
from callflow.core.errors import ConfigError

CREDS = {"CALLFLOW_ARI_USER": "u", "CALLFLOW_ARI_PASSWORD": "p", "CALLFLOW_STATE_DIR": "/nonexistent"}


def test_defaults_with_credentials_from_the_environment():
    cfg = config.load(env=CREDS)
    assert cfg.ari.url == "http://127.0.0.1:8088/ari"
    assert (cfg.ari.user, cfg.ari.password) == ("u", "p")
    assert cfg.http.host == "127.0.0.1"


def test_environment_beats_the_file(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[http]\nport = 9000\n[log]\nformat = "json"\n')
    cfg = config.load(f, env={**CREDS, "CALLFLOW_HTTP_PORT": "9100"})
    assert cfg.http.port == 9100
    assert cfg.log.format == "json"


def test_no_credentials_is_refused_with_a_clear_message():
    with pytest.raises(ConfigError, match="ari.user/ari.password"):
        config.load(env={"CALLFLOW_STATE_DIR": "/nonexistent"})


def test_sandbox_credentials_are_used_when_none_given(tmp_path):
    (tmp_path / "secrets.json").write_text('{"ari_user": "sb", "ari_password": "secret"}')
    cfg = config.load(env={"CALLFLOW_STATE_DIR": str(tmp_path)})
    assert (cfg.ari.user, cfg.ari.password) == ("sb", "secret")


@pytest.mark.parametrize("text, key, expected", [
    ('[http]\nport = "eighty"\n', "http.port", "a whole number"),
    ('[http]\nport = 70000\n', "http.port", "between 1 and 65535"),
    ('[log]\nformat = "xml"\n', "log.format", '"text" or "json"'),
    ('[ari]\nurl = "ws://x"\n', "ari.url", "http(s) URL"),
    ('[ari]\nping_interval = 120\n', "ari.ping_interval", "between 0.5 and 30"),
    ('[htp]\nport = 1\n', "htp", "one of the sections"),
    ('[http]\nprot = 1\n', "http.prot", "one of the keys"),
    ('[routing]\ncallback_dial = "PJSIP/x"\n', "routing.callback_dial", "with {number}"),
    ('[routing]\nagents_via = "queue"\n', "routing.agents_via", '"desk" or "dialplan"'),
    ('[silent_call]\ndead_line_total_wait = 5\n', "silent_call.dead_line_total_wait", "20"),
])
def test_wrong_values_name_the_key_and_the_expected_form(tmp_path, text, key, expected):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        config.load(f, env=CREDS)
    assert err.value.key == key
    assert expected in str(err.value)


def test_wrong_environment_value_names_the_variable():
    with pytest.raises(ConfigError) as err:
        config.load(env={**CREDS, "CALLFLOW_HTTP_PORT": "nope"})
    assert "CALLFLOW_HTTP_PORT" in err.value.key


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "missing.toml", env=CREDS)
    bad = tmp_path / "bad.toml"
    bad.write_text("[http\n")
    with pytest.raises(ConfigError, match="valid TOML"):
        config.load(bad, env=CREDS)


def test_the_ari_heartbeat_rides_out_a_loaded_machine():
    """The controller's ping and Asterisk's websocket write timeout must not drop a live ARI socket when
    the controller's loop stalls for a second or two (2 cores, load ≥ 30): aiohttp closes the socket when
    no pong comes within half the ping interval, Asterisk when a write blocks for websocket_write_timeout."""
    import re
    from pathlib import Path

    from callflow.config import AriConfig
    from callflow.telephony.ari.client import AriClient

    pong_deadline = AriConfig().ping_interval / 2
    assert pong_deadline >= 2.0
    assert AriClient.__init__.__kwdefaults__["ping_interval"] == AriConfig().ping_interval
    ari_conf = (Path(__file__).parents[2] / "asterisk" / "etc" / "ari.conf").read_text()
    write_timeout_ms = int(re.search(r"^websocket_write_timeout\s*=\s*(\d+)", ari_conf, re.M).group(1))
    assert write_timeout_ms >= pong_deadline * 1000
    assert AriConfig().ping_interval * 1.5 <= 10  # a half-dead socket is still noticed within seconds
