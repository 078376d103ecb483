-- The PostgreSQL store's statements, one named block each (parsed once by stores/_queries.py).
-- Parameters are psycopg's named placeholders (%(name)s); times are timestamptz. The numbered
-- files beside this one are the schema's migrations, applied under an advisory lock.

-- name: create_schema --
-- {schema} is filled in with psycopg.sql.Identifier: the store's own schema, when it has one.
CREATE SCHEMA IF NOT EXISTS {schema}

-- name: lock_migrations --
-- Held to the end of the migrating transaction: concurrent starters migrate one at a time.
SELECT pg_advisory_xact_lock(hashtext('outreach.migrations'))

-- name: create_schema_version --
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)

-- name: schema_version --
-- The newest migration applied (NULL on a new schema).
SELECT MAX(version) FROM schema_version

-- name: record_migration --
INSERT INTO schema_version (version) VALUES (%(version)s)

-- name: insert_plan --
-- A plan snapshot, stored once per fingerprint.
INSERT INTO plans (id, body) VALUES (%(id)s, %(body)s) ON CONFLICT DO NOTHING

-- name: get_plans --
SELECT id, body FROM plans WHERE id = ANY(%(ids)s)

-- name: insert_notification --
-- A new notification; nothing happens (and no id is returned) when its id or key is taken.
INSERT INTO notifications
    (id, key, campaign, parent_id, status, plan_id, due_at, version, created_at, body)
VALUES
    (%(id)s, %(key)s, %(campaign)s, %(parent_id)s, %(status)s, %(plan_id)s, %(due_at)s,
     %(version)s, %(created_at)s, %(body)s)
ON CONFLICT DO NOTHING
RETURNING id

-- name: get_by_key_or_id --
-- Who holds a new notification's key (or id) when its insert did nothing.
SELECT plan_id, body FROM notifications WHERE key = %(key)s OR id = %(id)s LIMIT 1

-- name: get --
SELECT plan_id, body FROM notifications WHERE id = %(id)s

-- name: get_by_key --
SELECT plan_id, body FROM notifications WHERE key = %(key)s

-- name: query --
-- Notifications, oldest first; a NULL filter matches everything.
SELECT plan_id, body FROM notifications
WHERE (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(campaign)s::text IS NULL OR campaign = %(campaign)s)
ORDER BY created_at, id LIMIT %(limit)s

-- name: unfinished_in_campaign --
-- Up to the limit, pending or active notifications of a campaign, in no particular order (the
-- campaign index answers it without sorting the whole campaign).
SELECT plan_id, body FROM notifications
WHERE campaign = %(campaign)s AND status IN ('pending', 'active')
LIMIT %(limit)s

-- name: campaign_counts --
-- A campaign's notifications by status, follow-ups apart (answered from the campaign index).
SELECT status, parent_id IS NOT NULL, COUNT(*) FROM notifications
WHERE campaign = %(campaign)s
GROUP BY status, parent_id IS NOT NULL

-- name: claim_due --
-- Lease up to %(limit)s notifications due at %(now)s that no live lease holds, in one
-- statement: rows another claimer has locked are skipped rather than waited for, so
-- concurrent claimers get disjoint batches. Each claim bumps the row's fencing counter.
WITH due AS (
    SELECT id FROM notifications
    WHERE due_at <= %(now)s AND (lease_until IS NULL OR lease_until <= %(now)s)
    ORDER BY due_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE notifications AS n
    SET lease_owner = %(owner)s, lease_until = %(lease_until)s, lease_epoch = n.lease_epoch + 1
    FROM due WHERE n.id = due.id
    RETURNING n.due_at, n.plan_id, n.body
)
SELECT plan_id, body FROM claimed ORDER BY due_at

-- name: release --
-- Give back %(owner)s's leases on the notifications in %(ids)s (a stopping runner).
UPDATE notifications SET lease_owner = NULL, lease_until = NULL
WHERE lease_owner = %(owner)s AND id = ANY(%(ids)s)

-- name: update_notification --
-- A version-checked write of a notification's new state; releases %(owner)s's lease.
UPDATE notifications SET
    status = %(status)s, due_at = %(due_at)s, version = %(new_version)s, body = %(body)s,
    lease_until = CASE WHEN lease_owner = %(owner)s THEN NULL ELSE lease_until END,
    lease_owner = CASE WHEN lease_owner = %(owner)s THEN NULL ELSE lease_owner END
WHERE id = %(id)s AND version = %(version)s
RETURNING id

-- name: upsert_attempt --
-- The index row of an attempt that went out: how webhooks find its notification.
INSERT INTO attempts
    (id, notification_id, medium, address, sender, provider_id, status, sent_at)
VALUES
    (%(id)s, %(notification_id)s, %(medium)s, %(address)s, %(sender)s, %(provider_id)s,
     %(status)s, %(sent_at)s)
ON CONFLICT (id) DO UPDATE SET
    sender = excluded.sender, provider_id = excluded.provider_id,
    status = excluded.status, sent_at = excluded.sent_at

-- name: next_due --
-- The earliest due time; a leased row is not due for anyone else before its lease lapses
-- (GREATEST ignores a NULL lease).
SELECT MIN(GREATEST(due_at, lease_until)) FROM notifications WHERE due_at IS NOT NULL

-- name: find_by_provider_id --
SELECT plan_id, body FROM notifications WHERE id = (
    SELECT notification_id FROM attempts WHERE provider_id = %(provider_id)s LIMIT 1
)

-- name: latest_sent_to --
-- The notification of the latest attempt sent to an address since %(since)s (from
-- %(sender)s, when both sides know it).
SELECT plan_id, body FROM notifications WHERE id = (
    SELECT notification_id FROM attempts
    WHERE medium = %(medium)s AND address = %(address)s AND sent_at >= %(since)s
      AND (%(sender)s::text IS NULL OR sender IS NULL OR sender = %(sender)s)
    ORDER BY sent_at DESC LIMIT 1
)

-- name: remember --
INSERT INTO webhook_receipts (key, received_at) VALUES (%(key)s, %(received_at)s)
ON CONFLICT DO NOTHING

-- name: forget --
DELETE FROM webhook_receipts WHERE key = %(key)s

-- name: insert_event --
INSERT INTO events (at, notification_id, kind, attempt_id, data)
VALUES (%(at)s, %(notification_id)s, %(kind)s, %(attempt_id)s, %(data)s)

-- name: events --
SELECT seq, at, notification_id, kind, attempt_id, data FROM events
WHERE seq > %(since)s ORDER BY seq LIMIT %(limit)s

-- name: opted_out --
-- The suppressions of these addresses (%(addresses)s is a list of strings).
SELECT medium, address FROM suppressions WHERE address = ANY(%(addresses)s)

-- name: insert_suppression --
-- An opt-out a provider reported; an existing suppression is kept as it is.
INSERT INTO suppressions (medium, address, reason, created_at)
VALUES (%(medium)s, %(address)s, %(reason)s, %(created_at)s)
ON CONFLICT DO NOTHING

-- name: suppress --
INSERT INTO suppressions (medium, address, reason, created_at)
VALUES (%(medium)s, %(address)s, %(reason)s, %(created_at)s)
ON CONFLICT (medium, address) DO UPDATE SET
    reason = excluded.reason, created_at = excluded.created_at

-- name: unsuppress --
DELETE FROM suppressions WHERE medium = %(medium)s AND address = %(address)s
