"""The running monitor: the daemon and its jobs, the consistency engine, the entry scanner, the
Rekor v1 index search, the wiring of configured logs and views to clients, the HTTP endpoint,
metrics, systemd integration and logging."""
