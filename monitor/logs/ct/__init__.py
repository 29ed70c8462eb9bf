"""RFC 6962 certificate transparency logs (``get-sth``, proofs, entries)."""
