-- Certificates never logged in Rekor (issue 15, unlogged_certificate; monitor/service/unlogged.py).

-- One row per (certificate, rule) a scanned CT log showed for a watched identity: its earliest CT
-- timestamp (ms), where it was seen (evidence, JSON) and the outcome: 'pending'; 'logged' (a
-- Rekor entry uses it: rekor_log_id, rekor_tree_id, rekor_index); 'alerted'
-- (unlogged_certificate, alert_id); 'not_expected' (the rule says expect_rekor = false);
-- 'unwatched' (no monitored Rekor log looks for the rule's certificates); 'unknowable' (older than
-- what some Rekor log's scan covers). Created and 'logged' in the transaction of the scan or
-- search that stores the match; the others in the judgement's transaction.
CREATE TABLE unlogged_checks (
    id             INTEGER PRIMARY KEY,
    certificate_id TEXT NOT NULL,
    rule           TEXT NOT NULL,
    ct_log_id      INTEGER NOT NULL REFERENCES logs (id),
    ct_ms          INTEGER NOT NULL,
    evidence       TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN
        ('pending', 'logged', 'alerted', 'not_expected', 'unwatched', 'unknowable')),
    rekor_log_id   INTEGER REFERENCES logs (id),
    rekor_tree_id  TEXT,
    rekor_index    INTEGER,
    alert_id       INTEGER REFERENCES alerts (id),
    created_at     TEXT NOT NULL,
    resolved_at    TEXT,
    UNIQUE (certificate_id, rule)
) STRICT;
CREATE INDEX unlogged_checks_pending ON unlogged_checks (state, ct_ms);

-- Since when a scanned Rekor log's scan reads every entry: 0 when it started at index 0, else
-- the monitor's time (ms) when its cursor was first seen set (entries integrated before it may
-- lie before the cursor, so a certificate older than that is not judged against this log).
CREATE TABLE rekor_scan_since (
    log_id     INTEGER PRIMARY KEY REFERENCES logs (id),
    since_ms   INTEGER NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
