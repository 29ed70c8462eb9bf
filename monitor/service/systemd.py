"""The systemd notify protocol (sd_notify), without a dependency: one datagram per message."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def sd_notify(message: str) -> bool:
    """Send `message` (e.g. "READY=1", "WATCHDOG=1") to systemd; False when not under systemd.

    Failures are logged, never raised: a lost readiness message must not stop the monitor.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as e:
        log.warning("sd_notify %s failed: %s", message.split("=", 1)[0], e)
        return False
    return True


def watchdog_interval() -> float | None:
    """Half the watchdog timeout systemd asked for (seconds), or None when there is none."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2_000_000, 1.0)
    except ValueError:
        return None
