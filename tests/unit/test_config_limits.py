"""Files the configuration names are read with a size cap: pointing a path at something endless
(/dev/zero) or huge fails at once with a message, never exhausts memory or hangs."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config.settings import (
    MAX_CONFIG_BYTES,
    MAX_KEY_FILE_BYTES,
    MAX_URLS_FILE_BYTES,
    load_config,
)
from monitor.core.errors import ConfigError

ENDLESS = Path("/dev/zero")
LOG = """
[[log]]
name = "private"
type = "rekor-v1"
url = "https://rekor.internal.example"
public_key = "{key}"
"""


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.mark.skipif(not ENDLESS.exists(), reason="no /dev/zero")
def test_endless_config_file() -> None:
    with pytest.raises(ConfigError, match=f"expected at most {MAX_CONFIG_BYTES} bytes"):
        load_config(ENDLESS)


@pytest.mark.skipif(not ENDLESS.exists(), reason="no /dev/zero")
def test_endless_public_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"larger than {MAX_KEY_FILE_BYTES} bytes"):
        load_config(config(tmp_path, LOG.format(key=ENDLESS)), environ={})


def test_huge_urls_file(tmp_path: Path) -> None:
    urls = tmp_path / "urls"
    urls.write_text("json://hooks.example/x\n" * (MAX_URLS_FILE_BYTES // 20))
    text = (
        '[[log]]\nname = "r"\ntype = "rekor-v1"\nurl = "https://rekor.sigstore.dev"\n'
        'trust_root = "production"\n[[notify]]\nname = "ops"\nurls_file = "urls"\n'
    )
    with pytest.raises(ConfigError, match=f"larger than {MAX_URLS_FILE_BYTES} bytes") as e:
        load_config(config(tmp_path, text), environ={})
    assert "hooks.example" not in str(e.value)
