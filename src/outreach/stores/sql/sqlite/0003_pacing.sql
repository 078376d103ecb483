-- Limits shared by every process on the file, and fencing for leases.
-- A claim bumps lease_epoch; a runner's write carries the epoch of its claim and is refused
-- once another claim has taken the notification over.
ALTER TABLE notifications ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;

-- One row per bucket: ("rate:<channel>", sender) for a channel's rate, ("cap:<medium>",
-- address) for the per-recipient cap. `tat` is the GCRA theoretical arrival time and
-- `granted` the start the last request got (epoch microseconds). A row whose tat has passed
-- means the same as no row, so those are swept now and then.
CREATE TABLE pacing (
    scope   TEXT NOT NULL,
    key     TEXT NOT NULL,
    tat     INTEGER NOT NULL,
    granted INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
