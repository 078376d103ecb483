-- The SQLite store's statements, one named block each (parsed once by stores/_queries.py).
-- Parameters are named (:name); times are epoch microseconds. The numbered files beside this
-- one are the schema's migrations.

-- name: create_schema_version --
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)

-- name: schema_version --
-- The newest migration applied (NULL on a new file).
SELECT MAX(version) FROM schema_version

-- name: record_migration --
INSERT INTO schema_version (version) VALUES (:version)

-- name: insert_plan --
-- A plan snapshot, stored once per fingerprint.
INSERT OR IGNORE INTO plans (id, body) VALUES (:id, :body)

-- name: get_plan --
SELECT body FROM plans WHERE id = :id

-- name: insert_notification --
-- A new notification; ignored when its id or key is taken.
INSERT OR IGNORE INTO notifications
    (id, key, campaign, parent_id, status, plan_id, due_at, version, created_at, body)
VALUES
    (:id, :key, :campaign, :parent_id, :status, :plan_id, :due_at, :version, :created_at, :body)

-- name: get_by_key_or_id --
-- Who holds a new notification's key (or id) when its insert was ignored.
SELECT plan_id, body FROM notifications WHERE key = :key OR id = :id

-- name: get --
SELECT plan_id, body FROM notifications WHERE id = :id

-- name: get_by_key --
SELECT plan_id, body FROM notifications WHERE key = :key

-- name: query --
-- Notifications, oldest first; a NULL filter matches everything.
SELECT plan_id, body FROM notifications
WHERE (:status IS NULL OR status = :status) AND (:campaign IS NULL OR campaign = :campaign)
ORDER BY created_at, id LIMIT :limit

-- name: unfinished_in_campaign --
-- Up to the limit, pending or active notifications of a campaign, in no particular order (the
-- campaign index answers it without sorting the whole campaign).
SELECT plan_id, body FROM notifications
WHERE campaign = :campaign AND status IN ('pending', 'active')
LIMIT :limit

-- name: campaign_counts --
-- A campaign's notifications by status, follow-ups apart (answered from the campaign index).
SELECT status, parent_id IS NOT NULL, COUNT(*) FROM notifications
WHERE campaign = :campaign
GROUP BY status, parent_id IS NOT NULL

-- name: claim_due --
-- Lease up to :limit notifications due at :now that no live lease holds.
UPDATE notifications SET lease_owner = :owner, lease_until = :lease_until
WHERE id IN (
    SELECT id FROM notifications
    WHERE due_at <= :now AND (lease_until IS NULL OR lease_until <= :now)
    ORDER BY due_at LIMIT :limit
)
RETURNING plan_id, body

-- name: release --
-- Give back :owner's leases on the notifications in the JSON array :ids (a stopping runner).
UPDATE notifications SET lease_owner = NULL, lease_until = NULL
WHERE lease_owner = :owner AND id IN (SELECT value FROM json_each(:ids))

-- name: update_notification --
-- A version-checked write of a notification's new state; releases :owner's lease.
UPDATE notifications SET
    status = :status, due_at = :due_at, version = :new_version, body = :body,
    lease_until = CASE WHEN lease_owner = :owner THEN NULL ELSE lease_until END,
    lease_owner = CASE WHEN lease_owner = :owner THEN NULL ELSE lease_owner END
WHERE id = :id AND version = :version

-- name: upsert_attempt --
-- The index row of an attempt that went out: how webhooks find its notification.
INSERT INTO attempts
    (id, notification_id, medium, address, sender, provider_id, status, sent_at)
VALUES (:id, :notification_id, :medium, :address, :sender, :provider_id, :status, :sent_at)
ON CONFLICT (id) DO UPDATE SET
    sender = excluded.sender, provider_id = excluded.provider_id,
    status = excluded.status, sent_at = excluded.sent_at

-- name: next_due --
-- The earliest due time; a leased row is not due for anyone else before its lease lapses.
SELECT MIN(MAX(due_at, COALESCE(lease_until, 0))) FROM notifications WHERE due_at IS NOT NULL

-- name: find_by_provider_id --
SELECT plan_id, body FROM notifications WHERE id = (
    SELECT notification_id FROM attempts WHERE provider_id = :provider_id LIMIT 1
)

-- name: latest_sent_to --
-- The notification of the latest attempt sent to an address since :since (from :sender, when
-- both sides know it).
SELECT plan_id, body FROM notifications WHERE id = (
    SELECT notification_id FROM attempts
    WHERE medium = :medium AND address = :address AND sent_at >= :since
      AND (:sender IS NULL OR sender IS NULL OR sender = :sender)
    ORDER BY sent_at DESC LIMIT 1
)

-- name: remember --
INSERT OR IGNORE INTO webhook_receipts (key, received_at) VALUES (:key, :received_at)

-- name: forget --
DELETE FROM webhook_receipts WHERE key = :key

-- name: insert_event --
INSERT INTO events (at, notification_id, kind, attempt_id, data)
VALUES (:at, :notification_id, :kind, :attempt_id, :data)

-- name: events --
SELECT seq, at, notification_id, kind, attempt_id, data FROM events
WHERE seq > :since ORDER BY seq LIMIT :limit

-- name: opted_out --
-- The suppressions of these addresses (:addresses is a JSON array of strings).
SELECT medium, address FROM suppressions
WHERE address IN (SELECT value FROM json_each(:addresses))

-- name: insert_suppression --
-- An opt-out a provider reported; an existing suppression is kept as it is.
INSERT OR IGNORE INTO suppressions (medium, address, reason, created_at)
VALUES (:medium, :address, :reason, :created_at)

-- name: suppress --
INSERT OR REPLACE INTO suppressions (medium, address, reason, created_at)
VALUES (:medium, :address, :reason, :created_at)

-- name: unsuppress --
DELETE FROM suppressions WHERE medium = :medium AND address = :address
