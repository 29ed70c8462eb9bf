-- The global log index of a matched entry: what users look entries up by (Rekor's `logIndex`).
-- `log_index` stays the index within the tree (the fact's identity, stable across shards); the
-- two differ on every Rekor v1 shard but the first. NULL on rows recorded before this column.
ALTER TABLE matches ADD COLUMN global_index INTEGER CHECK (global_index >= 0);
