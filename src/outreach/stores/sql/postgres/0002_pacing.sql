-- Limits shared by every worker, and a gap-free event feed.
-- One row per bucket: ("rate:<channel>", sender) for a channel's rate, ("cap:<medium>",
-- address) for the per-recipient cap. `tat` is the GCRA theoretical arrival time and
-- `granted` the start the last request got. A row whose tat has passed means the same as no
-- row, so those are swept now and then.
CREATE TABLE pacing (
    scope   TEXT NOT NULL,
    key     TEXT NOT NULL,
    tat     TIMESTAMPTZ NOT NULL,
    granted TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key)
);

-- The transaction that wrote each event. Identity values are handed out before commit, so a
-- transaction holding seq 11 may commit before one holding seq 10; readers order by
-- (txid, seq) instead, and only read below the oldest transaction that may still log an
-- entry (writers hold a shared advisory lock: queries.sql, lock_events), which no later
-- commit can precede. Rows logged before this migration share its transaction id.
ALTER TABLE events ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX events_txid ON events (txid, seq);
