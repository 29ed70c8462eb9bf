"""The configuration: ``settings`` (the TOML file, validated into typed settings),
``trust_roots`` (Sigstore trusted roots: their logs and Fulcio CAs) and ``example`` (the
commented example configuration shipped in the package)."""
