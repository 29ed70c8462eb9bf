"""Files shipped inside the package: the complete, commented example configuration.

``config.toml`` here is the repository's top-level ``config.toml``, kept byte for byte equal by
``tests/integration/test_packaging.py``, so an installed wheel can print it
(``tlog-monitor config example``) without the repository.
"""

from __future__ import annotations

from importlib import resources

from monitor.core.errors import MonitorError

__all__ = ["example_config"]


def example_config() -> str:
    """The example configuration's text, as shipped in the installed package."""
    try:
        return resources.files(__name__).joinpath("config.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise MonitorError(
            f"the example configuration is missing from the installed package ({e}): "
            "reinstall tlog-monitor"
        ) from e
