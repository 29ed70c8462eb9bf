"""The project's exception families.

Three families, handled differently everywhere (see docs/): the log misbehaved (alert, keep
evidence), the network failed (retry, record, alert past a grace period), or the configuration
is wrong (fail fast with a message that says how to fix it).
"""


class MonitorError(Exception):
    """Base of every error raised by tlog-monitor."""


class VerificationError(MonitorError):
    """Data from a log failed cryptographic or structural verification: the log misbehaved."""


class ParseError(MonitorError):
    """Data from the network or a file is malformed: it could not be parsed at all."""


class ConfigError(MonitorError):
    """The configuration is invalid; the message names the key and what is wrong."""


class NetworkError(MonitorError):
    """A log or channel could not be reached or answered with a transport-level failure."""


class UsageError(MonitorError):
    """A command-line argument cannot be used (a malformed `--since`, an alert id that does not
    exist, a report database that is not there): exit 2, but not a configuration error."""


class TrustRootError(ParseError):
    """A Sigstore trusted root or signing config is malformed: the message names the field."""
