-- `outreach db prune` deletes webhook receipts older than the replay window: found by age.
CREATE INDEX webhook_receipts_received ON webhook_receipts (received_at);
