-- Bounded ct_leaves (issue 15): each proven leaf keeps its MerkleTreeLeaf timestamp (ms), the
-- timestamp of the SCT that promised it, so the scan can drop leaves older than any promise it
-- still judges (`ct_coverage.since_ms` is raised to the pruning point in the same transaction).
-- Rows written before this migration have no known timestamp (NULL) and are never pruned by age.
ALTER TABLE ct_leaves ADD COLUMN entry_ms INTEGER;
CREATE INDEX ct_leaves_age ON ct_leaves (log_id, entry_ms);
