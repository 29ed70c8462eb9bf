"""C2SP tlog-tiles (Rekor v2 and other tiled logs): ``client`` fetches checkpoints, tiles and
entry bundles and names their paths."""
