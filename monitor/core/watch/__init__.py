"""Watch rules: which signing identities to look for in log entries, and matching them (pure).

What a `[[watch]]` rule means is docs/configuration.md#watch; how the modules here fit
together, and how to add a matcher kind, is docs/architecture.md#adding-a-watch-matcher.

* `patterns`: globs and `san_regex` compiled for RE2 (linear time in the subject).
* `matchers`: the matcher kinds, one class each, in one table (`MATCHER_KINDS`).
* `rules`: a `[[watch]]` table compiled into a `WatchRule`; the rules' search terms.
* `match`: `Matcher`, applying rules to parsed entries.
* `prefilter`: the raw-body test that rules out most entries before they are parsed.
* `terms`: search terms for a Rekor v1 search index.
* `chunk`: the pure work on one chunk of a backfill (hash, fold, pre-filter), a worker's.

The package re-exports nothing: import from the module that holds a name. A scan worker
process imports only `chunk` and `prefilter`, and starts while a backfill waits for it (the
whole package, with cryptography's x509, took it 0.1 s of CPU more).
"""
