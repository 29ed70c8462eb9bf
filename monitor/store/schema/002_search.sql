-- Rekor v1 search-index monitoring (monitor/search.py).

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
    log_index   INTEGER NOT NULL,
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
