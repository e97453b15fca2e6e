"""Settings: read from the environment, refused clearly, and all documented."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from server.config import Settings, load_settings
from server.errors import ConfigError


def test_every_setting_is_in_the_readme_table_with_its_default() -> None:
    readme = Path("README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", readme, flags=re.M))
    for field in msgspec.structs.fields(Settings):
        name = field.name.upper()
        assert name in rows, f"{name} is not documented in README.md"
        default = field.default
        if isinstance(default, str) and default:
            assert default in rows[name], f"{name}: README default {rows[name]!r} != {default!r}"
        elif isinstance(default, int | float) and not isinstance(default, bool):
            assert rows[name].strip(" `") in (str(default), f"{default:g}"), name


def test_environment_values_are_converted() -> None:
    settings = load_settings({"PORT": "9000", "WS_PING_INTERVAL": "2.5", "DEMO": "true"}, None)
    assert (settings.port, settings.ws_ping_interval, settings.demo) == (9000, 2.5, True)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"WS_SEND_BUFFER_LIMIT": "10"}, "WS_SEND_BUFFER_LIMIT"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"WORKERS": "3"}, "REDIS_URL"),
    ],
)
def test_bad_values_name_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(environ, None)


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("# comment\nPORT=9100\nexport HOST='0.0.0.0'\n")
    settings = load_settings({"HOST": "127.0.0.2"}, dotenv)
    assert (settings.port, settings.host) == (9100, "127.0.0.2")
