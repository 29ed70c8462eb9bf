"""The ``tlog-monitor`` command: ``main`` (argument parsing and dispatch) and the commands that
are more than a call into the service: reports, inspect, evidence export/verify, demo."""
