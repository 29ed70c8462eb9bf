"""Alert delivery: routing alerts to channels, rendering messages, the outbox rounds over
apprise, and the redaction of notify URLs' secrets in logs."""
