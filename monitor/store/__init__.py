"""The SQLite store: the schema (``schema/``, numbered migrations) and ``database``, the one
place that reads and writes it."""
