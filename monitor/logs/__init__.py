"""Log clients (the IO shell): Rekor v1 REST and C2SP tlog-tiles, over one HTTP layer.

``http`` owns every request (size caps, timeouts, retries, rate budget, error translation);
``rekor_v1`` and ``tiles`` parse what logs serve into frozen dataclasses at the edge. Nothing
here verifies signatures or decides what an answer means; callers decide from the error family:

=====================  ===================  =============================================
error                  family               what the caller does
=====================  ===================  =============================================
LogUnavailable         NetworkError         retry later; log_error once past error_grace
                                            (``retry_after``: the log asked to wait that long)
LogNotReady            NetworkError         retry later: a lagging replica, not tampering
LogResponseError       ParseError           the log answered garbage: log_error past grace
  LogStatusError                            ... a non-retryable 4xx (``status``)
    LogNotFound                             ... a 404
EntryMismatch          VerificationError    the log misbehaved: bad_entry (rekor_v1)
ValueError                                  a caller's bug (bad sizes, indexes, widths)
=====================  ===================  =============================================

Proof hashes are returned unverified: verify them (``monitor.core.merkle``) against the roots of
signed checkpoints you hold; a ``ProofError`` there is the log misbehaving.
"""

from monitor.logs.http import (
    HttpPolicy,
    LogNotFound,
    LogNotReady,
    LogResponseError,
    LogStatusError,
    LogUnavailable,
    RequestBudget,
)
from monitor.logs.rekor_v1.client import EntryMismatch, RekorV1Client, TreeHead, V1Entry, V1LogInfo
from monitor.logs.tiles.client import TilesClient

__all__ = [
    "EntryMismatch",
    "HttpPolicy",
    "LogNotFound",
    "LogNotReady",
    "LogResponseError",
    "LogStatusError",
    "LogUnavailable",
    "RekorV1Client",
    "RequestBudget",
    "TilesClient",
    "TreeHead",
    "V1Entry",
    "V1LogInfo",
]
