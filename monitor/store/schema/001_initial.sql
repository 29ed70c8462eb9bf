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
-- Fulcio roots: recorded, never alerted). `source` is how the entry was found: scan, search or
-- backfill (found by a search, integrated before the term's baseline: recorded, not alerted).
-- `tree_index` is the entry's index in its tree (the fact's identity, stable across shards);
-- `global_index` its index in the log, what users look entries up by (Rekor's `logIndex`). The
-- two differ on every Rekor v1 shard but the first.
CREATE TABLE matches (
    id           INTEGER PRIMARY KEY,
    log_id       INTEGER NOT NULL REFERENCES logs(id),
    tree_id      TEXT NOT NULL,
    tree_index   INTEGER NOT NULL CHECK (tree_index >= 0),
    global_index INTEGER NOT NULL CHECK (global_index >= 0),
    rule         TEXT NOT NULL,
    signer_index INTEGER NOT NULL DEFAULT 0,
    outcome      TEXT NOT NULL,
    source       TEXT NOT NULL,
    identity     TEXT NOT NULL,
    certificate  BLOB,
    alert_id     INTEGER REFERENCES alerts(id),
    created_at   TEXT NOT NULL,
    UNIQUE (log_id, tree_id, tree_index, rule, signer_index)
) STRICT;
CREATE INDEX matches_by_time ON matches (created_at);

-- Entries a scan could not parse: reported, never silently dropped.
CREATE TABLE scan_errors (
    id          INTEGER PRIMARY KEY,
    log_id      INTEGER NOT NULL REFERENCES logs(id),
    tree_id     TEXT NOT NULL,
    tree_index  INTEGER NOT NULL,
    error       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (log_id, tree_id, tree_index)
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
-- `sending_since`: when a send began whose outcome is not recorded yet; a row that still
-- carries it when a later send begins was cut off mid-send (a crash, a kill). `maybe_sent`: some
-- earlier send of the row may have reached the receiver (cut off, or abandoned after its
-- timeout); it stays set until the row is delivered, so the retry is marked as a possible repeat
-- instead of pretending to be the first.
CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY,
    alert_id     INTEGER NOT NULL REFERENCES alerts(id),
    channel      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'delivered')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    next_try     TEXT NOT NULL,
    delivered_at TEXT,
    sending_since TEXT,
    maybe_sent   INTEGER NOT NULL DEFAULT 0 CHECK (maybe_sent IN (0, 1)),
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

-- Rekor v1 search-index monitoring (monitor/service/index_search.py).

-- Each term looked up in a log's search index. `first_searched_at` is the term's baseline:
-- entries the log integrated before it are past history, recorded as matches (source
-- 'backfill') but not alerted.
CREATE TABLE search_terms (
    log_id            INTEGER NOT NULL REFERENCES logs(id),
    term              TEXT NOT NULL,
    first_searched_at TEXT NOT NULL,
    last_searched_at  TEXT NOT NULL,
    results           INTEGER NOT NULL DEFAULT 0 CHECK (results >= 0),
    last_error        TEXT,
    PRIMARY KEY (log_id, term)
) STRICT;

-- Entries a search has dealt with, by leaf hash, so each is fetched, proven and matched once.
-- `outcome`: 'verified' (proven; matched against the rules), 'bad_entry' (its evidence failed:
-- alerted), 'unparseable' (proven, but the body could not be read: see scan_errors).
CREATE TABLE search_seen (
    log_id      INTEGER NOT NULL REFERENCES logs(id),
    leaf_hash   BLOB NOT NULL,
    tree_id     TEXT NOT NULL,
    tree_index  INTEGER NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('verified', 'bad_entry', 'unparseable')),
    first_seen  TEXT NOT NULL,
    PRIMARY KEY (log_id, leaf_hash)
) STRICT;

-- Progress of the search per log, for `report status`.
CREATE TABLE search_progress (
    log_id              INTEGER PRIMARY KEY REFERENCES logs(id),
    terms               INTEGER NOT NULL,
    fetched             INTEGER NOT NULL DEFAULT 0,
    requests_last_min   INTEGER NOT NULL,
    requests_per_minute INTEGER NOT NULL,
    updated_at          TEXT NOT NULL
) STRICT;

-- Witness signatures seen on checkpoints. One row per checkpoint body and witness: the
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
