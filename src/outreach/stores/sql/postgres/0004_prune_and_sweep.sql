-- `outreach db prune` marks the notifications whose personal data it removed, so a second
-- run neither counts nor rewrites them again.
ALTER TABLE notifications ADD COLUMN pruned BOOLEAN NOT NULL DEFAULT FALSE;

CREATE INDEX notifications_prunable ON notifications (created_at) WHERE NOT pruned;

-- Prune rewrites the replies of the notifications it prunes: only those are looked up.
CREATE INDEX events_replies ON events (notification_id) WHERE kind = 'reply';

-- The sweeper looks for notifications active with nothing scheduled, and for leases that ran
-- out long ago without a takeover: both sets are small, and so are these indexes.
CREATE INDEX notifications_undue ON notifications (id) WHERE status = 'active' AND due_at IS NULL;
CREATE INDEX notifications_leased ON notifications (lease_until) WHERE lease_until IS NOT NULL;
