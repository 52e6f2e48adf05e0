-- The re-encryption job: one row, shared by every instance. Its cursor moves
-- in the same transaction as the rows of each batch, so a crash or restart
-- resumes where it stopped, losing no row and redoing no batch.
CREATE TABLE IF NOT EXISTS kms_reencryption (
  id SMALLINT PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  state TEXT NOT NULL CHECK (state IN ('running', 'stopped', 'finished')),
  -- Bumped by every start: a batch read under one job never commits into the next.
  generation INTEGER NOT NULL DEFAULT 1,
  -- Values under versions below this move; NULL: every version but the target.
  below_version INTEGER,
  -- The active key this pass moves values to; a rotation starts a new pass.
  target_version INTEGER NOT NULL,
  -- The last users.id done.
  cursor_id INTEGER NOT NULL DEFAULT 0,
  rows_done BIGINT NOT NULL DEFAULT 0,
  -- Rows skipped because a value did not decrypt (revoked key, altered bytes).
  rows_failed BIGINT NOT NULL DEFAULT 0,
  last_error TEXT,
  batch_size INTEGER NOT NULL CHECK (batch_size > 0),
  pause_ms INTEGER NOT NULL CHECK (pause_ms >= 0),
  started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  finished_at TIMESTAMPTZ
);
COMMENT ON TABLE kms_reencryption IS 'The re-encryption job of stored values to the active data key (one row)';
