-- The SQLite store's statements, one named block each (parsed once by stores/_queries.py).
-- Parameters are named (:name); times are epoch microseconds. The numbered files beside this
-- one are the schema's migrations.

-- name: create_schema_version --
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)

-- name: has_schema_version --
-- Whether the file holds the schema's version table (a store opened without creating one).
SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'

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
-- Lease up to :limit notifications due at :now that no live lease holds; each claim bumps the
-- row's fencing counter.
UPDATE notifications
SET lease_owner = :owner, lease_until = :lease_until, lease_epoch = lease_epoch + 1
WHERE id IN (
    SELECT id FROM notifications
    WHERE due_at <= :now AND (lease_until IS NULL OR lease_until <= :now)
    ORDER BY due_at LIMIT :limit
)
RETURNING id, lease_epoch, plan_id, body

-- name: renew --
-- Extend :owner's leases to :lease_until, for the [id, fencing counter] pairs in the JSON
-- array :held: a lease another claim took over is left alone.
UPDATE notifications SET lease_until = :lease_until
WHERE lease_owner = :owner AND (id, lease_epoch) IN (
    SELECT value ->> 0, value ->> 1 FROM json_each(:held)
)
RETURNING id

-- name: release --
-- Give back :owner's leases on the notifications in the JSON array :ids (a stopping runner).
UPDATE notifications SET lease_owner = NULL, lease_until = NULL
WHERE lease_owner = :owner AND id IN (SELECT value FROM json_each(:ids))

-- name: update_notification --
-- A version-checked write of a notification's new state; releases :owner's lease. With a
-- :fence, only while no other claim has taken the notification over since.
UPDATE notifications SET
    status = :status, due_at = :due_at, version = :new_version, body = :body,
    lease_until = CASE WHEN lease_owner = :owner THEN NULL ELSE lease_until END,
    lease_owner = CASE WHEN lease_owner = :owner THEN NULL ELSE lease_owner END
WHERE id = :id AND version = :version AND (:fence IS NULL OR lease_epoch = :fence)

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

-- name: active_sent_to --
-- The active notifications with an attempt sent to an address since :since, the most
-- recently sent first: a recipient's concurrent conversations on one medium.
SELECT n.plan_id, n.body FROM notifications n JOIN (
    SELECT notification_id, MAX(sent_at) AS last_sent FROM attempts
    WHERE medium = :medium AND address = :address AND sent_at >= :since
    GROUP BY notification_id
) a ON a.notification_id = n.id
WHERE n.status IN ('pending', 'active')
ORDER BY a.last_sent DESC
LIMIT :limit

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

-- name: prunable --
-- Notifications finished before :before_iso (and so started before :before, which the index
-- narrows to) whose personal data is still stored (:statuses lists the finished statuses).
SELECT id, version, body FROM notifications
WHERE pruned = 0 AND created_at < :before
  AND status IN (SELECT value FROM json_each(:statuses))
  AND julianday(COALESCE(json_extract(body, '$.finished_at'), json_extract(body, '$.created_at')))
      < julianday(:before_iso)
LIMIT :limit

-- name: prune_notification --
-- Replace a record by its anonymous copy, unless another writer moved it on meanwhile.
UPDATE notifications SET body = :body, version = version + 1, pruned = 1
WHERE id = :id AND version = :version

-- name: prune_attempts --
UPDATE attempts SET address = NULL WHERE notification_id = :id

-- name: prune_replies --
UPDATE events SET data = json_remove(data, '$.text')
WHERE notification_id = :id AND kind = 'reply'

-- name: prune_receipts --
-- Forget up to :limit webhook receipts (callbacks' de-duplication keys) received before :before.
DELETE FROM webhook_receipts
WHERE key IN (SELECT key FROM webhook_receipts WHERE received_at < :before LIMIT :limit)

-- name: stuck_active --
-- Active notifications with nothing scheduled and no live lease: no runner will ever look at
-- them again.
SELECT id FROM notifications
WHERE status = 'active' AND due_at IS NULL AND (lease_until IS NULL OR lease_until <= :now)
LIMIT :limit

-- name: stuck_sending --
-- Notifications with an attempt `sending` whose lease ran out before :before and that no
-- runner took over since.
SELECT id FROM notifications
WHERE lease_until < :before
  AND EXISTS (
      SELECT 1 FROM json_each(body, '$.attempts') WHERE json_extract(value, '$.status') = 'sending'
  )
LIMIT :limit

-- name: pace --
-- Charge one send against one bucket (see 0003_pacing.sql) and say when it may start, in one
-- upsert on the bucket's row; times are epoch microseconds from :now. The send starts no
-- earlier than :after from now and no earlier than the bucket allows (its theoretical arrival
-- time less :tolerance); it is charged (the arrival time moves on by :step) only when that
-- start is within :horizon. Returns the start's delay from now.
INSERT INTO pacing AS p (scope, key, tat, granted)
VALUES (
    :scope, :key,
    CASE WHEN :after <= :horizon THEN :now + :after + :step ELSE :now END,
    :now + :after
)
ON CONFLICT (scope, key) DO UPDATE SET
    granted = MAX(:now + :after, p.tat - :tolerance),
    tat = CASE
        WHEN MAX(:now + :after, p.tat - :tolerance) <= :now + :horizon
        THEN MAX(p.tat, :now + :after) + :step
        ELSE p.tat END
RETURNING granted - :now

-- name: charge --
-- Move a bucket's theoretical arrival time by :step (negative: give a place back).
UPDATE pacing SET tat = tat + :step WHERE scope = :scope AND key = :key

-- name: sweep_pacing --
-- Forget buckets whose theoretical arrival time has passed: they mean the same as no row.
DELETE FROM pacing WHERE tat < :now

-- name: events_of_notification --
-- One notification's log entries (of :kinds, a JSON array of strings, unless NULL; of
-- :recipient_id's notifications only, unless NULL), by the events_notification index.
SELECT seq, at, notification_id, kind, attempt_id, data FROM events
WHERE notification_id = :notification_id AND seq > :since
  AND (:recipient_id IS NULL OR notification_id IN (
      SELECT id FROM notifications WHERE recipient_id = :recipient_id
  ))
  AND (:kinds IS NULL OR kind IN (SELECT value FROM json_each(:kinds)))
ORDER BY seq LIMIT :limit

-- name: events_of_recipient --
-- The log entries of one recipient's notifications (of :kinds unless NULL): their
-- notifications by recipient id, then each one's entries by the events_notification index.
SELECT seq, at, notification_id, kind, attempt_id, data FROM events
WHERE notification_id IN (SELECT id FROM notifications WHERE recipient_id = :recipient_id)
  AND seq > :since
  AND (:kinds IS NULL OR kind IN (SELECT value FROM json_each(:kinds)))
ORDER BY seq LIMIT :limit

-- name: events_of_kinds --
-- Log entries of some kinds (:kinds is a JSON array of strings).
SELECT seq, at, notification_id, kind, attempt_id, data FROM events
WHERE seq > :since AND kind IN (SELECT value FROM json_each(:kinds))
ORDER BY seq LIMIT :limit

-- name: insert_attention --
-- Opened with the change that causes it; a change written twice opens it once.
INSERT OR IGNORE INTO attention
    (id, notification_id, recipient_id, campaign, reason, detail, opened_at)
VALUES
    (:id, :notification_id, :recipient_id, :campaign, :reason, :detail, :opened_at)

-- name: open_attentions --
-- Of the records a group of changes adds causes to (:ids, a JSON array), those still open:
-- checked in the write transaction, so none is resolved before the group commits.
SELECT id FROM attention
WHERE id IN (SELECT value FROM json_each(:ids)) AND resolved_at IS NULL

-- name: amend_attention --
-- An open record's detail with a later cause added, and its reason when the cause changes it
-- (checked open by open_attentions).
UPDATE attention SET detail = :detail, reason = COALESCE(:reason, reason)
WHERE id = :id

-- name: attentions --
-- Attention records, oldest first; a NULL filter matches everything (:open: 1 open, 0 resolved).
SELECT id, notification_id, recipient_id, campaign, reason, detail, opened_at, resolved_at,
       resolved_by, note, taken_by, taken_at, unanswered_at
FROM attention
WHERE (:campaign IS NULL OR campaign = :campaign)
  AND (:open IS NULL OR (resolved_at IS NULL) = :open)
  AND (:recipient_id IS NULL OR recipient_id = :recipient_id)
ORDER BY opened_at, id LIMIT :limit

-- name: get_attention --
SELECT id, notification_id, recipient_id, campaign, reason, detail, opened_at, resolved_at,
       resolved_by, note, taken_by, taken_at, unanswered_at
FROM attention WHERE id = :id

-- name: take_attention --
-- Give an open record nobody has taken to its first taker; a taken or resolved one is left.
UPDATE attention SET taken_by = :taken_by, taken_at = :taken_at
WHERE id = :id AND taken_by IS NULL AND resolved_at IS NULL

-- name: unanswered_attention --
-- Mark, once, that paging for an open record nobody took has ended.
UPDATE attention SET unanswered_at = :unanswered_at
WHERE id = :id AND taken_by IS NULL AND resolved_at IS NULL AND unanswered_at IS NULL

-- name: paged_out --
-- Open records nobody took whose pages have all ended and that are not marked so yet (the
-- check after the last page's ending did not happen: its process stopped, say).
SELECT a.id FROM attention a
WHERE a.resolved_at IS NULL AND a.taken_by IS NULL AND a.unanswered_at IS NULL
  AND EXISTS (SELECT 1 FROM notifications n WHERE n.campaign = 'attention/' || a.id)
  AND NOT EXISTS (
      SELECT 1 FROM notifications n
      WHERE n.campaign = 'attention/' || a.id AND n.status IN ('pending', 'active'))
ORDER BY a.opened_at, a.id LIMIT :limit

-- name: resolve_attention --
-- Close an open record; a resolved one is left as it is.
UPDATE attention SET resolved_at = :resolved_at, resolved_by = :resolved_by, note = :note
WHERE id = :id AND resolved_at IS NULL
