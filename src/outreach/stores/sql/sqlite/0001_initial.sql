-- Notifications keep their full record as JSON in `body`; the columns beside it exist to be
-- queried (due work, keys, campaigns) and to make claims and version checks atomic.
CREATE TABLE plans (
    id   TEXT PRIMARY KEY,          -- Plan.fingerprint: one snapshot per distinct plan
    body TEXT NOT NULL
);

CREATE TABLE notifications (
    id          TEXT PRIMARY KEY,
    key         TEXT UNIQUE,
    campaign    TEXT,
    parent_id   TEXT,
    status      TEXT NOT NULL,
    plan_id     TEXT NOT NULL REFERENCES plans (id),
    due_at      INTEGER,            -- epoch microseconds; NULL when nothing is scheduled
    version     INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,            -- epoch microseconds
    created_at  INTEGER NOT NULL,
    body        TEXT NOT NULL
);

CREATE INDEX notifications_due ON notifications (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX notifications_campaign ON notifications (campaign, status);
CREATE INDEX notifications_status ON notifications (status);

CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    notification_id TEXT NOT NULL,
    kind            TEXT NOT NULL,
    attempt_id      TEXT,
    data            TEXT NOT NULL
);

CREATE TABLE suppressions (
    medium     TEXT NOT NULL,
    address    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (medium, address)
);
