-- SCT promises (issue 15, sct_not_incorporated): what monitored CT logs promised by the SCTs
-- embedded in matched certificates, and what their scanned trees hold. Numbered 004 so that a
-- 003 for CT matches can land independently.

-- Every leaf hash the scan of a CT log proved into its verified tree, written in the
-- transaction that moves the scan cursor past it.
CREATE TABLE ct_leaves (
    log_id     INTEGER NOT NULL REFERENCES logs (id),
    leaf_hash  BLOB NOT NULL,
    tree_index INTEGER NOT NULL,
    PRIMARY KEY (log_id, leaf_hash)
) STRICT, WITHOUT ROWID;

-- How much of a CT log's history the scan has seen: every entry from `from_index` on, up to a
-- verified tree whose STH says `covered_ms` (milliseconds). `since_ms` is the timestamp of the
-- STH whose tree the scan started at (0 when it started at index 0): an SCT older than that may
-- have been kept in entries never scanned, so it is not judged.
CREATE TABLE ct_coverage (
    log_id     INTEGER PRIMARY KEY REFERENCES logs (id),
    from_index INTEGER NOT NULL,
    since_ms   INTEGER NOT NULL,
    covered_ms INTEGER NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

-- One row per (CT log, promised leaf): the SCT's timestamp, its deadline (timestamp + the
-- maximum merge delay), the evidence (JSON: SCT, certificate, where it was found) and the
-- outcome: 'pending'; 'incorporated' (at tree_index); 'alerted' (sct_not_incorporated, alert_id);
-- 'unknowable' (older than the scan's coverage). Resolved in the transaction of the scan or
-- judgement that decides it.
CREATE TABLE sct_promises (
    id          INTEGER PRIMARY KEY,
    ct_log_id   INTEGER NOT NULL REFERENCES logs (id),
    leaf_hash   BLOB NOT NULL,
    sct_ms      INTEGER NOT NULL,
    deadline_ms INTEGER NOT NULL,
    state       TEXT NOT NULL
        CHECK (state IN ('pending', 'incorporated', 'alerted', 'unknowable')),
    tree_index  INTEGER,
    evidence    TEXT NOT NULL,
    alert_id    INTEGER REFERENCES alerts (id),
    created_at  TEXT NOT NULL,
    resolved_at TEXT,
    UNIQUE (ct_log_id, leaf_hash)
) STRICT;
CREATE INDEX sct_promises_due ON sct_promises (ct_log_id, state, deadline_ms);
