-- The PostgreSQL store's schema: the same tables as SQLite's, with PostgreSQL's types.
-- Notifications keep their full record as JSON text in `body` (the encoding both SQL stores
-- share); the columns beside it exist to be queried and to make claims and version checks
-- atomic.
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
    due_at      TIMESTAMPTZ,        -- NULL when nothing is scheduled
    version     INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMPTZ,
    lease_epoch BIGINT NOT NULL DEFAULT 0,  -- fencing counter: bumped by every claim
    created_at  TIMESTAMPTZ NOT NULL,
    body        TEXT NOT NULL
);

CREATE INDEX notifications_due ON notifications (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX notifications_campaign ON notifications (campaign, status);
CREATE INDEX notifications_status ON notifications (status);
CREATE INDEX notifications_created ON notifications (created_at, id);

CREATE TABLE events (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              TIMESTAMPTZ NOT NULL,
    notification_id TEXT NOT NULL,
    kind            TEXT NOT NULL,
    attempt_id      TEXT,
    data            TEXT NOT NULL
);

CREATE TABLE suppressions (
    medium     TEXT NOT NULL,
    address    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (medium, address)
);

-- Webhooks find a notification from what a provider sends back: its message/call id, or (for
-- an inbound reply) the address we last wrote to from a given sender.
CREATE TABLE attempts (
    id              TEXT PRIMARY KEY,
    notification_id TEXT NOT NULL REFERENCES notifications (id),
    medium          TEXT,
    address         TEXT,
    sender          TEXT,
    provider_id     TEXT,
    status          TEXT NOT NULL,
    sent_at         TIMESTAMPTZ
);

CREATE INDEX attempts_provider ON attempts (provider_id) WHERE provider_id IS NOT NULL;
CREATE INDEX attempts_address ON attempts (medium, address, sent_at);

-- Provider callbacks arrive more than once: each event's own id is remembered here.
CREATE TABLE webhook_receipts (
    key         TEXT PRIMARY KEY,
    received_at TIMESTAMPTZ NOT NULL
);
