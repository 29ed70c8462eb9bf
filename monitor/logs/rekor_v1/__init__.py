"""Rekor v1 (REST): ``client`` fetches and parses checkpoints, proofs, entries and index
searches."""
