"""The pure core: every decision that needs no IO.

Merkle proofs, signed notes and checkpoints, entry bodies, certificates and the CA check,
watch rules and their matching, witness cosignatures, split-view evidence, alert kinds and
severities, and the field readers used on every JSON/TOML value. Nothing here opens a file or
a socket, touches a database or sends a message, and nothing imports another layer of
``monitor``: ``tests/unit/test_layers.py`` enforces both.
"""
