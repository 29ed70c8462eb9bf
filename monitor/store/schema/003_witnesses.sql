-- Witness signatures seen on checkpoints (issue 5). One row per checkpoint body and witness: the
-- first valid signature line seen, kept so that /checkpoints can re-serve the log's latest
-- verified checkpoint with every cosignature gathered for it, from any view. Only signatures
-- that verified against a configured witness key are recorded.
CREATE TABLE cosignatures (
    id          INTEGER PRIMARY KEY,
    log_id      INTEGER NOT NULL REFERENCES logs(id),
    tree_id     TEXT NOT NULL,
    origin      TEXT NOT NULL,
    size        INTEGER NOT NULL CHECK (size >= 0),
    root        BLOB NOT NULL,
    witness     TEXT NOT NULL,
    timestamp   INTEGER,
    line        TEXT NOT NULL,
    view        TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    UNIQUE (log_id, origin, size, root, witness)
) STRICT;
