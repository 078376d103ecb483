-- Paging (an attention record nobody picks up pages the staff): who took a record and when,
-- and when its paging ended with nobody taking it.
ALTER TABLE attention ADD COLUMN taken_by TEXT;              -- NULL until someone takes it
ALTER TABLE attention ADD COLUMN taken_at TIMESTAMPTZ;
ALTER TABLE attention ADD COLUMN unanswered_at TIMESTAMPTZ;  -- set once, when paging gave up
