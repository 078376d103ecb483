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
    sent_at         INTEGER
);

CREATE INDEX attempts_provider ON attempts (provider_id) WHERE provider_id IS NOT NULL;
CREATE INDEX attempts_address ON attempts (medium, address, sent_at);

-- Provider callbacks arrive more than once: each event's own id is remembered here.
CREATE TABLE webhook_receipts (
    key         TEXT PRIMARY KEY,
    received_at INTEGER NOT NULL
);
