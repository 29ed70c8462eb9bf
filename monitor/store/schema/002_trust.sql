-- Trust from [[sigstore]] sources (TUF repositories), and where each log came from (issue 14).

-- NULL: a [[log]] table of the configuration; else the name of the [[sigstore]] source whose
-- trusted root listed the log.
ALTER TABLE logs ADD COLUMN source TEXT;

-- Each distinct trust a source held: the verified target bytes as they came, and the TUF
-- metadata versions they were verified with (NULL for the copy embedded in sigstore). `origin`
-- says where the bytes came from this time: a refresh ('tuf'), the cache of the last good
-- refresh ('cache'), or sigstore's embedded copy ('embedded'). `sha256` identifies the content
-- (see monitor.store.database.trust_digest): the same content again reuses the row.
CREATE TABLE trust_snapshots (
    id                INTEGER PRIMARY KEY,
    source            TEXT NOT NULL,
    origin            TEXT NOT NULL CHECK (origin IN ('tuf', 'cache', 'embedded')),
    sha256            TEXT NOT NULL,
    trusted_root      BLOB NOT NULL,
    signing_config    BLOB,
    root_version      INTEGER,
    timestamp_version INTEGER,
    snapshot_version  INTEGER,
    targets_version   INTEGER,
    recorded_at       TEXT NOT NULL
) STRICT;
CREATE INDEX trust_snapshots_by_source ON trust_snapshots (source, id);

-- Every change between two trusts of a source, with the snapshot that brought it and its
-- trust_changed alert. `before` / `after`: JSON of each side (NULL for the missing side).
CREATE TABLE trust_changes (
    id           INTEGER PRIMARY KEY,
    source       TEXT NOT NULL,
    snapshot_id  INTEGER NOT NULL REFERENCES trust_snapshots(id),
    change       TEXT NOT NULL,
    section      TEXT NOT NULL,
    name         TEXT NOT NULL,
    before       TEXT,
    after        TEXT,
    recorded_at  TEXT NOT NULL,
    alert_id     INTEGER REFERENCES alerts(id)
) STRICT;
CREATE INDEX trust_changes_by_source ON trust_changes (source, id);

-- Per source: the current trust, the last refresh attempt and success, and the current run of
-- failed refreshes (trust_error past error_grace).
CREATE TABLE trust_sources (
    source        TEXT PRIMARY KEY,
    snapshot_id   INTEGER REFERENCES trust_snapshots(id),
    last_refresh  TEXT,
    last_success  TEXT,
    error_since   TEXT,
    last_error    TEXT,
    errors        INTEGER NOT NULL DEFAULT 0 CHECK (errors >= 0)
) STRICT;
