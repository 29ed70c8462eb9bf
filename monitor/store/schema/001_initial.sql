-- Initial schema. Times are UTC ISO-8601 strings; hashes are raw bytes; JSON columns hold
-- objects written by the code. Every table is STRICT so a wrong type is an error, not a surprise.

CREATE TABLE logs (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    url         TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;

-- Every distinct checkpoint seen, per view. Rekor v1 re-signs its checkpoint on every request,
-- so a checkpoint is identified by (origin, size, root), never by its signature bytes; the first
-- note seen is kept as evidence.
CREATE TABLE checkpoints (
    id          INTEGER PRIMARY KEY,
    log_id      INTEGER NOT NULL REFERENCES logs(id),
    tree_id     TEXT NOT NULL,
    view        TEXT NOT NULL,
    origin      TEXT NOT NULL,
    size        INTEGER NOT NULL CHECK (size >= 0),
    root        BLOB NOT NULL,
    note        TEXT NOT NULL,
    cosigners   TEXT NOT NULL DEFAULT '[]',
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    UNIQUE (log_id, view, origin, size, root)
) STRICT;
CREATE INDEX checkpoints_by_size ON checkpoints (log_id, tree_id, size);

-- Verified state per log and tree (a Rekor v1 shard, or a tiled log's single tree). The verified
-- checkpoint moves only in the transaction that records the proof that justified it; the
-- high-water mark never goes down.
CREATE TABLE log_state (
    log_id          INTEGER NOT NULL REFERENCES logs(id),
    tree_id         TEXT NOT NULL,
    origin          TEXT NOT NULL,
    verified_size   INTEGER NOT NULL CHECK (verified_size >= 0),
    verified_root   BLOB NOT NULL,
    verified_note   TEXT NOT NULL,
    high_water      INTEGER NOT NULL CHECK (high_water >= verified_size),
    scan_cursor     INTEGER,
    compact_range   BLOB,
    frozen          INTEGER NOT NULL DEFAULT 0,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (log_id, tree_id)
) STRICT;

-- Reachability per log and view, for log_error (past error_grace) and log_stale (past max_stale).
CREATE TABLE view_health (
    log_id          INTEGER NOT NULL REFERENCES logs(id),
    view            TEXT NOT NULL,
    last_ok_at      TEXT,
    last_growth_at  TEXT,
    error_since     TEXT,
    last_error      TEXT,
    errors          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (log_id, view)
) STRICT;

-- Entries that matched a watch rule: one row per entry, rule and signer. `outcome` is
-- unexpected_signer, identity_seen, or untrusted (the certificate does not chain to the log's
-- Fulcio roots: recorded, never alerted). `source` is how the entry was found: scan or search.
CREATE TABLE matches (
    id           INTEGER PRIMARY KEY,
    log_id       INTEGER NOT NULL REFERENCES logs(id),
    tree_id      TEXT NOT NULL,
    log_index    INTEGER NOT NULL,
    rule         TEXT NOT NULL,
    signer_index INTEGER NOT NULL DEFAULT 0,
    outcome      TEXT NOT NULL,
    source       TEXT NOT NULL,
    identity     TEXT NOT NULL,
    certificate  BLOB,
    alert_id     INTEGER REFERENCES alerts(id),
    created_at   TEXT NOT NULL,
    UNIQUE (log_id, tree_id, log_index, rule, signer_index)
) STRICT;
CREATE INDEX matches_by_time ON matches (created_at);

-- Entries a scan could not parse: reported, never silently dropped.
CREATE TABLE scan_errors (
    id          INTEGER PRIMARY KEY,
    log_id      INTEGER NOT NULL REFERENCES logs(id),
    tree_id     TEXT NOT NULL,
    log_index   INTEGER NOT NULL,
    error       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (log_id, tree_id, log_index)
) STRICT;

CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    severity    TEXT NOT NULL,
    log_id      INTEGER REFERENCES logs(id),
    rule        TEXT,
    dedup_key   TEXT NOT NULL UNIQUE,
    summary     TEXT NOT NULL,
    details     TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;
CREATE INDEX alerts_by_time ON alerts (created_at);

-- The outbox: one row per alert and channel, written in the alert's transaction, retried until
-- delivered. A channel is identified by its configured name, never by its (secret) URLs.
CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY,
    alert_id     INTEGER NOT NULL REFERENCES alerts(id),
    channel      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'delivered')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    next_try     TEXT NOT NULL,
    delivered_at TEXT,
    UNIQUE (alert_id, channel)
) STRICT;
CREATE INDEX deliveries_due ON deliveries (status, next_try);

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    command      TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    outcome      TEXT,
    details      TEXT NOT NULL DEFAULT '{}'
) STRICT;
