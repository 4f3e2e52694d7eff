-- live_seq orders broadcasts on the live streams: given at a broadcast's
-- first claim, one above the highest, so values are taken in commit order
-- (the unique index makes a concurrent claim that read the same highest
-- fail and retry). 0: not yet claimed, or claimed before this column
-- (never on the live stream).
ALTER TABLE push_broadcasts ADD COLUMN live_seq BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX push_broadcasts_live ON push_broadcasts (live_seq) WHERE live_seq > 0;
