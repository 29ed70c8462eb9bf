"""tlog-monitor: a monitor for transparency logs (Sigstore Rekor v1 and C2SP tiled logs)."""

__version__ = "0.1.0"
