-- Where a rekor-v1 search index was looked in for a pending unlogged check (issue 15,
-- unlogged_certificate; monitor/service/index_search.py `Searcher._lookups`): one row per
-- (check, log), the latest completed lookup that found no entry using the certificate. The index
-- was shown to hold the entry at tree_size - 1 of tree tree_id (the newest of the verified tree)
-- before the lookup, and covered_ms is when the log last served that verified tree. Written in
-- its own transaction after the lookup's entries are committed, only while the check is pending.
CREATE TABLE unlogged_searches (
    check_id   INTEGER NOT NULL REFERENCES unlogged_checks (id),
    log_id     INTEGER NOT NULL REFERENCES logs (id),
    tree_id    TEXT NOT NULL,
    tree_size  INTEGER NOT NULL,
    covered_ms INTEGER NOT NULL,
    looked_at  TEXT NOT NULL,
    PRIMARY KEY (check_id, log_id)
) STRICT;
