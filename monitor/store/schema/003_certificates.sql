-- Certificates across logs (issue 15): a CT log's precertificate, its final certificate and the
-- Rekor entries that use it are one certificate, named by its issuer and serial number
-- (monitor.core.certs.certificate_id: "<hex SHA-256 of the issuer Name DER>:<hex serial>").
-- NULL for a match on a bare public key, and for matches recorded before this migration.
ALTER TABLE matches ADD COLUMN certificate_id TEXT;
CREATE INDEX matches_by_certificate ON matches (certificate_id, rule)
    WHERE certificate_id IS NOT NULL;
