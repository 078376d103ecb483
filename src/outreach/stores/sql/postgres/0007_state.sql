-- A transition writes what changed: the record's changing part (status, times, the attempts)
-- goes to `state`, laid over `body` when read, and `body` keeps what a notification is given
-- at its start (its recipient, context and metadata), written once. NULL: `body` holds all
-- (a row no transition wrote since its start).
ALTER TABLE notifications ADD COLUMN state TEXT;
