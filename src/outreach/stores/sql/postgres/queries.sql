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

-- name: has_schema_version --
-- Whether the search path holds the schema's version table (a store opened without creating one).
SELECT to_regclass('schema_version') IS NOT NULL

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
SELECT plan_id, body, state FROM notifications WHERE key = %(key)s OR id = %(id)s LIMIT 1

-- name: get --
SELECT plan_id, body, state FROM notifications WHERE id = %(id)s

-- name: get_by_key --
SELECT plan_id, body, state FROM notifications WHERE key = %(key)s

-- name: query --
-- Notifications, oldest first; a NULL filter matches everything.
SELECT plan_id, body, state FROM notifications
WHERE (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(campaign)s::text IS NULL OR campaign = %(campaign)s)
ORDER BY created_at, id LIMIT %(limit)s

-- name: unfinished_in_campaign --
-- Up to the limit, pending or active notifications of a campaign, in no particular order (the
-- campaign index answers it without sorting the whole campaign).
SELECT plan_id, body, state FROM notifications
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
    RETURNING n.due_at, n.id, n.lease_epoch, n.plan_id, n.body, n.state
)
SELECT id, lease_epoch, plan_id, body, state FROM claimed ORDER BY due_at

-- name: renew --
-- Extend %(owner)s's leases to %(lease_until)s, for the (id, fencing counter) pairs in
-- %(ids)s and %(epochs)s: a lease another claim took over is left alone.
UPDATE notifications AS n SET lease_until = %(lease_until)s
FROM unnest(%(ids)s::text[], %(epochs)s::bigint[]) AS held (id, epoch)
WHERE n.id = held.id AND n.lease_epoch = held.epoch AND n.lease_owner = %(owner)s
RETURNING n.id

-- name: release --
-- Give back %(owner)s's leases on the notifications in %(ids)s (a stopping runner).
UPDATE notifications SET lease_owner = NULL, lease_until = NULL
WHERE lease_owner = %(owner)s AND id = ANY(%(ids)s)

-- name: update_notification --
-- A version-checked write of a notification's new state (the changing part of its record:
-- the body, written at its start, is left alone); releases %(owner)s's lease. With a
-- %(fence)s, only while no other claim has taken the notification over since.
UPDATE notifications SET
    status = %(status)s, due_at = %(due_at)s, version = %(new_version)s, state = %(state)s,
    lease_until = CASE WHEN lease_owner = %(owner)s THEN NULL ELSE lease_until END,
    lease_owner = CASE WHEN lease_owner = %(owner)s THEN NULL ELSE lease_owner END
WHERE id = %(id)s AND version = %(version)s
  AND (%(fence)s::bigint IS NULL OR lease_epoch = %(fence)s)
RETURNING id

-- name: update_notifications --
-- update_notification for a group of changes of distinct notifications, in one statement:
-- the rows come as one JSON array of objects, %(rows)s (one text parameter, encoded in one
-- call: psycopg adapts parallel arrays element by element in Python). Returns the ids written.
UPDATE notifications AS n SET
    status = c.status, due_at = c.due_at, version = c.new_version, state = c.state,
    lease_until = CASE WHEN n.lease_owner = c.owner THEN NULL ELSE n.lease_until END,
    lease_owner = CASE WHEN n.lease_owner = c.owner THEN NULL ELSE n.lease_owner END
FROM json_to_recordset(%(rows)s::json) AS c (
    id text, version integer, new_version integer, status text, due_at timestamptz,
    state text, owner text, fence bigint
)
WHERE n.id = c.id AND n.version = c.version
  AND (c.fence IS NULL OR n.lease_epoch = c.fence)
RETURNING n.id

-- name: upsert_attempts --
-- upsert_attempt for attempts of distinct ids, in one statement (a JSON array, as above).
INSERT INTO attempts
    (id, notification_id, medium, address, sender, provider_id, status, sent_at)
SELECT id, notification_id, medium, address, sender, provider_id, status, sent_at
FROM json_to_recordset(%(rows)s::json) AS a (
    id text, notification_id text, medium text, address text, sender text,
    provider_id text, status text, sent_at timestamptz
)
ON CONFLICT (id) DO UPDATE SET
    sender = excluded.sender, provider_id = excluded.provider_id,
    status = excluded.status, sent_at = excluded.sent_at

-- name: insert_events --
-- insert_event for a list of entries (a JSON array, as above), in one statement; they get
-- their seq in list order.
INSERT INTO events (at, notification_id, kind, attempt_id, data)
SELECT at, notification_id, kind, attempt_id, data FROM ROWS FROM (
    json_to_recordset(%(rows)s::json) AS (
        at timestamptz, notification_id text, kind text, attempt_id text, data text
    )
) WITH ORDINALITY AS e (at, notification_id, kind, attempt_id, data, rank)
ORDER BY rank

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
SELECT plan_id, body, state FROM notifications WHERE id = (
    SELECT notification_id FROM attempts WHERE provider_id = %(provider_id)s LIMIT 1
)

-- name: latest_sent_to --
-- The notification of the latest attempt sent to an address since %(since)s (from
-- %(sender)s, when both sides know it).
SELECT plan_id, body, state FROM notifications WHERE id = (
    SELECT notification_id FROM attempts
    WHERE medium = %(medium)s AND address = %(address)s AND sent_at >= %(since)s
      AND (%(sender)s::text IS NULL OR sender IS NULL OR sender = %(sender)s)
    ORDER BY sent_at DESC LIMIT 1
)

-- name: active_sent_to --
-- The active notifications with an attempt sent to an address since %(since)s, the most
-- recently sent first: a recipient's concurrent conversations on one medium.
SELECT n.plan_id, n.body, n.state FROM notifications n JOIN (
    SELECT notification_id, MAX(sent_at) AS last_sent FROM attempts
    WHERE medium = %(medium)s AND address = %(address)s AND sent_at >= %(since)s
    GROUP BY notification_id
) a ON a.notification_id = n.id
WHERE n.status IN ('pending', 'active')
ORDER BY a.last_sent DESC
LIMIT %(limit)s

-- name: remember --
INSERT INTO webhook_receipts (key, received_at) VALUES (%(key)s, %(received_at)s)
ON CONFLICT DO NOTHING

-- name: forget --
DELETE FROM webhook_receipts WHERE key = %(key)s

-- name: insert_event --
INSERT INTO events (at, notification_id, kind, attempt_id, data)
VALUES (%(at)s, %(notification_id)s, %(kind)s, %(attempt_id)s, %(data)s)

-- name: events_table --
-- The events table's oid: with a constant, the key of the advisory lock its writers share.
SELECT 'events'::regclass::oid::bigint

-- name: lock_events --
-- Taken by every transaction that logs events, before its first write (so before it has a
-- transaction id), held to its end: readers see who may still commit entries.
SELECT pg_advisory_xact_lock_shared(%(key)s)

-- name: events_horizon --
-- Who may still log entries: the next transaction id to be handed out, and the (32-bit) ids
-- of the transactions holding the event writers' lock %(key)s. Read in a statement of its
-- own, before the read of the entries (whose snapshot is then later than this).
SELECT
    pg_snapshot_xmax(pg_current_snapshot())::text,
    ARRAY(
        SELECT t.transactionid::text::bigint
        FROM pg_locks AS a
        JOIN pg_locks AS t
          ON t.virtualtransaction = a.virtualtransaction
         AND t.locktype = 'transactionid' AND t.granted
        WHERE a.locktype = 'advisory' AND a.granted AND a.objsubid = 1
          AND a.classid = (%(key)s >> 32)::oid AND a.objid = (%(key)s & 4294967295)::oid
    )

-- name: events --
-- Entries after the cursor %(since)s, gap-free: ordered by writing transaction, then seq, and
-- only from transactions older than %(horizon)s (events_horizon: every writer that could
-- still commit an entry is that new or newer). An entry's cursor is its transaction id
-- shifted left 24 bits plus its rank in that transaction; %(since_txid)s is %(since)s's
-- transaction (since >> 24).
SELECT position, at, notification_id, kind, attempt_id, data FROM (
    SELECT (txid::text::bigint << 24) + row_number() OVER (PARTITION BY txid ORDER BY seq)
               AS position,
           txid, seq, at, notification_id, kind, attempt_id, data
    FROM events
    WHERE txid >= %(since_txid)s::bigint::text::xid8
      AND txid < %(horizon)s::bigint::text::xid8
) AS feed
WHERE position > %(since)s
ORDER BY txid, seq LIMIT %(limit)s

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

-- name: notify --
-- Wake the runners listening on %(channel)s. Sent by the application, once per transaction
-- that made work due sooner (never from a trigger: a trigger's NOTIFY serialises commits).
SELECT pg_notify(%(channel)s, '')

-- name: prunable --
-- Notifications finished before %(before)s (and so started before it, which the index
-- narrows to) whose personal data is still stored.
SELECT id, version, body, state FROM notifications
WHERE NOT pruned AND created_at < %(before)s AND status = ANY(%(statuses)s)
  AND COALESCE(
      state::jsonb ->> 'finished_at', body::jsonb ->> 'finished_at', body::jsonb ->> 'created_at'
  )::timestamptz < %(before)s
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED

-- name: prune_notification --
-- Replace a record by its anonymous copy (the whole record, in the body), unless another
-- writer moved it on meanwhile.
UPDATE notifications SET body = %(body)s, state = NULL, version = version + 1, pruned = TRUE
WHERE id = %(id)s AND version = %(version)s

-- name: prune_attempts --
UPDATE attempts SET address = NULL WHERE notification_id = %(id)s

-- name: prune_replies --
UPDATE events SET data = (data::jsonb - 'text')::text
WHERE notification_id = %(id)s AND kind = 'reply'

-- name: prune_receipts --
-- Forget up to %(limit)s webhook receipts (callbacks' de-duplication keys) received before %(before)s.
DELETE FROM webhook_receipts
WHERE key IN (SELECT key FROM webhook_receipts WHERE received_at < %(before)s LIMIT %(limit)s)

-- name: stuck_active --
-- Active notifications with nothing scheduled and no live lease: no runner will ever look at
-- them again.
SELECT id FROM notifications
WHERE status = 'active' AND due_at IS NULL AND (lease_until IS NULL OR lease_until <= %(now)s)
LIMIT %(limit)s

-- name: stuck_sending --
-- Notifications with an attempt `sending` whose lease ran out before %(before)s and that no
-- runner took over since.
SELECT id FROM notifications
WHERE lease_until < %(before)s
  AND COALESCE(state, body)::jsonb -> 'attempts' @> '[{"status": "sending"}]'
LIMIT %(limit)s

-- name: pace --
-- Charge one send against one bucket (see 0002_pacing.sql) and say when it may start, in one
-- upsert on the bucket's row. The clock is %(now)s, or the database's own when NULL. The send
-- starts no earlier than %(after)s from now and no earlier than the bucket allows (its
-- theoretical arrival time less %(tolerance)s); it is charged (the arrival time moves on by
-- %(step)s) only when that start is within %(horizon)s. Returns the start's delay from now.
INSERT INTO pacing AS p (scope, key, tat, granted)
VALUES (
    %(scope)s, %(key)s,
    CASE WHEN %(after)s::interval <= %(horizon)s::interval
         THEN COALESCE(%(now)s::timestamptz, now()) + %(after)s::interval + %(step)s::interval
         ELSE COALESCE(%(now)s::timestamptz, now()) END,
    COALESCE(%(now)s::timestamptz, now()) + %(after)s::interval
)
ON CONFLICT (scope, key) DO UPDATE SET
    granted = GREATEST(
        COALESCE(%(now)s::timestamptz, now()) + %(after)s::interval,
        p.tat - %(tolerance)s::interval),
    tat = CASE
        WHEN GREATEST(
                COALESCE(%(now)s::timestamptz, now()) + %(after)s::interval,
                p.tat - %(tolerance)s::interval)
             <= COALESCE(%(now)s::timestamptz, now()) + %(horizon)s::interval
        THEN GREATEST(p.tat, COALESCE(%(now)s::timestamptz, now()) + %(after)s::interval)
             + %(step)s::interval
        ELSE p.tat END
RETURNING granted - COALESCE(%(now)s::timestamptz, now())

-- name: charge --
-- Move a bucket's theoretical arrival time by %(step)s (negative: give a place back).
UPDATE pacing SET tat = tat + %(step)s::interval WHERE scope = %(scope)s AND key = %(key)s

-- name: sweep_pacing --
-- Forget buckets whose theoretical arrival time has passed: they mean the same as no row.
DELETE FROM pacing WHERE tat < COALESCE(%(now)s::timestamptz, now())

-- name: events_of_notification --
-- One notification's log entries (of %(kinds)s unless NULL; of %(recipient_id)s's
-- notifications only, unless NULL), by the events_notification index.
-- Read as the events query reads the whole log: gap-free, below %(horizon)s, by cursor (an
-- entry's rank in its transaction is counted over all of that transaction's entries).
SELECT position, at, notification_id, kind, attempt_id, data FROM (
    SELECT (e.txid::text::bigint << 24) + (
               SELECT count(*) FROM events AS same WHERE same.txid = e.txid AND same.seq <= e.seq
           ) AS position,
           e.txid, e.seq, e.at, e.notification_id, e.kind, e.attempt_id, e.data
    FROM events AS e
    WHERE e.notification_id = %(notification_id)s
      AND (%(recipient_id)s::text IS NULL OR e.notification_id IN (
          SELECT id FROM notifications WHERE recipient_id = %(recipient_id)s
      ))
      AND (%(kinds)s::text[] IS NULL OR e.kind = ANY(%(kinds)s))
      AND e.txid >= %(since_txid)s::bigint::text::xid8
      AND e.txid < %(horizon)s::bigint::text::xid8
) AS feed
WHERE position > %(since)s
ORDER BY txid, seq LIMIT %(limit)s

-- name: events_of_recipient --
-- The log entries of one recipient's notifications (of %(kinds)s unless NULL): their
-- notifications by recipient id, then each one's entries by the events_notification index.
-- Read as the events query reads the whole log: gap-free, below %(horizon)s, by cursor (an
-- entry's rank in its transaction is counted over all of that transaction's entries).
SELECT position, at, notification_id, kind, attempt_id, data FROM (
    SELECT (e.txid::text::bigint << 24) + (
               SELECT count(*) FROM events AS same WHERE same.txid = e.txid AND same.seq <= e.seq
           ) AS position,
           e.txid, e.seq, e.at, e.notification_id, e.kind, e.attempt_id, e.data
    FROM events AS e
    WHERE e.notification_id IN (SELECT id FROM notifications WHERE recipient_id = %(recipient_id)s)
      AND (%(kinds)s::text[] IS NULL OR e.kind = ANY(%(kinds)s))
      AND e.txid >= %(since_txid)s::bigint::text::xid8
      AND e.txid < %(horizon)s::bigint::text::xid8
) AS feed
WHERE position > %(since)s
ORDER BY txid, seq LIMIT %(limit)s

-- name: events_of_kinds --
-- Log entries of some kinds.
-- Read as the events query reads the whole log: gap-free, below %(horizon)s, by cursor (an
-- entry's rank in its transaction is counted over all of that transaction's entries).
SELECT position, at, notification_id, kind, attempt_id, data FROM (
    SELECT (e.txid::text::bigint << 24) + (
               SELECT count(*) FROM events AS same WHERE same.txid = e.txid AND same.seq <= e.seq
           ) AS position,
           e.txid, e.seq, e.at, e.notification_id, e.kind, e.attempt_id, e.data
    FROM events AS e
    WHERE e.kind = ANY(%(kinds)s)
      AND e.txid >= %(since_txid)s::bigint::text::xid8
      AND e.txid < %(horizon)s::bigint::text::xid8
) AS feed
WHERE position > %(since)s
ORDER BY txid, seq LIMIT %(limit)s

-- name: insert_attention --
-- Opened with the change that causes it; a change written twice opens it once.
INSERT INTO attention
    (id, notification_id, recipient_id, campaign, reason, detail, opened_at)
VALUES
    (%(id)s, %(notification_id)s, %(recipient_id)s, %(campaign)s, %(reason)s, %(detail)s,
     %(opened_at)s)
ON CONFLICT DO NOTHING

-- name: lock_open_attentions --
-- Of the records a group of changes adds causes to, those still open, locked until the group
-- commits (a resolve waits for it), in id order.
SELECT id FROM attention
WHERE id = ANY(%(ids)s) AND resolved_at IS NULL
ORDER BY id
FOR UPDATE

-- name: amend_attention --
-- An open record's detail with a later cause added, and its reason when the cause changes it
-- (locked by lock_open_attentions).
UPDATE attention SET detail = %(detail)s, reason = COALESCE(%(reason)s::text, reason)
WHERE id = %(id)s

-- name: attentions --
-- Attention records, oldest first; a NULL filter matches everything.
SELECT id, notification_id, recipient_id, campaign, reason, detail, opened_at, resolved_at,
       resolved_by, note, taken_by, taken_at, unanswered_at
FROM attention
WHERE (%(campaign)s::text IS NULL OR campaign = %(campaign)s)
  AND (%(open)s::boolean IS NULL OR (resolved_at IS NULL) = %(open)s)
  AND (%(recipient_id)s::text IS NULL OR recipient_id = %(recipient_id)s)
ORDER BY opened_at, id LIMIT %(limit)s

-- name: get_attention --
SELECT id, notification_id, recipient_id, campaign, reason, detail, opened_at, resolved_at,
       resolved_by, note, taken_by, taken_at, unanswered_at
FROM attention WHERE id = %(id)s

-- name: take_attention --
-- Give an open record nobody has taken to its first taker; a taken or resolved one is left.
UPDATE attention SET taken_by = %(taken_by)s, taken_at = %(taken_at)s
WHERE id = %(id)s AND taken_by IS NULL AND resolved_at IS NULL
RETURNING id

-- name: unanswered_attention --
-- Mark, once, that paging for an open record nobody took has ended.
UPDATE attention SET unanswered_at = %(unanswered_at)s
WHERE id = %(id)s AND taken_by IS NULL AND resolved_at IS NULL AND unanswered_at IS NULL
RETURNING id

-- name: paged_out --
-- Open records nobody took whose pages have all ended and that are not marked so yet (the
-- check after the last page's ending did not happen: its process stopped, say).
SELECT a.id FROM attention a
WHERE a.resolved_at IS NULL AND a.taken_by IS NULL AND a.unanswered_at IS NULL
  AND EXISTS (SELECT 1 FROM notifications n WHERE n.campaign = 'attention/' || a.id)
  AND NOT EXISTS (
      SELECT 1 FROM notifications n
      WHERE n.campaign = 'attention/' || a.id AND n.status IN ('pending', 'active'))
ORDER BY a.opened_at, a.id LIMIT %(limit)s

-- name: resolve_attention --
-- Close an open record; a resolved one is left as it is.
UPDATE attention SET resolved_at = %(resolved_at)s, resolved_by = %(resolved_by)s,
    note = %(note)s
WHERE id = %(id)s AND resolved_at IS NULL
RETURNING id

-- name: insert_event_returning_seq --
-- One log entry, answering with its cursor in the feed (see events): its transaction id
-- shifted left 24 bits plus its rank in that transaction (the subquery does not see the row
-- being inserted, hence the 1).
INSERT INTO events (at, notification_id, kind, attempt_id, data)
VALUES (%(at)s, %(notification_id)s, %(kind)s, %(attempt_id)s, %(data)s)
RETURNING (txid::text::bigint << 24) + 1 + (
    SELECT count(*) FROM events AS same WHERE same.txid = events.txid AND same.seq < events.seq
)
