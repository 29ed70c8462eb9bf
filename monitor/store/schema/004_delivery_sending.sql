-- Deliveries a receiver may already have. `sending_since`: when a send began whose outcome is
-- not recorded yet; a row that still carries it when a later send begins was cut off mid-send
-- (a crash, a kill). `maybe_sent`: some earlier send of the row may have reached the receiver
-- (cut off, or abandoned after its timeout); it stays set until the row is delivered, so the
-- retry is marked as a possible repeat instead of pretending to be the first.
ALTER TABLE deliveries ADD COLUMN sending_since TEXT;
ALTER TABLE deliveries ADD COLUMN maybe_sent INTEGER NOT NULL DEFAULT 0 CHECK (maybe_sent IN (0, 1));
