-- Attention records: notifications a person should act on (unreached, a reply not
-- understood, a handoff option chosen), opened in the same transaction as their cause.
CREATE TABLE attention (
    id              TEXT PRIMARY KEY,
    notification_id TEXT NOT NULL,
    recipient_id    TEXT NOT NULL,
    campaign        TEXT,
    reason          TEXT NOT NULL,
    detail          TEXT NOT NULL,
    opened_at       TIMESTAMPTZ NOT NULL,
    resolved_at     TIMESTAMPTZ,        -- NULL while open
    resolved_by     TEXT,
    note            TEXT
);

CREATE INDEX attention_open ON attention (opened_at, id) WHERE resolved_at IS NULL;
CREATE INDEX attention_campaign ON attention (campaign, opened_at);
CREATE INDEX attention_recipient ON attention (recipient_id, opened_at);

-- One customer's timeline: their notifications by recipient id (read from the stored record,
-- so no write has to name it), and each notification's log entries.
ALTER TABLE notifications ADD COLUMN recipient_id TEXT
    GENERATED ALWAYS AS ((body::json) -> 'recipient' ->> 'id') STORED;

CREATE INDEX notifications_recipient ON notifications (recipient_id);
CREATE INDEX events_notification ON events (notification_id, seq);
