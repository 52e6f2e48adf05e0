-- Online rotation of the blind-index key. Each indexed field has two index
-- columns, slots 0 (<field>_hash) and 1 (<field>_hash_b); the key in
-- kms_index_keys fills the column of its slot. A rotation puts a new key
-- beside it (next_encrypted_key, filling the other slot): while both exist,
-- writes fill both columns and lookups consult both; a background job fills
-- the new column for older rows, then the new key replaces the old one
-- (deleted) and the job empties the old column, which the next rotation
-- fills again. The schema never changes at run time.
ALTER TABLE users
  ADD COLUMN IF NOT EXISTS email_hash_b VARCHAR(64),
  ADD COLUMN IF NOT EXISTS phone_hash_b VARCHAR(64),
  ADD COLUMN IF NOT EXISTS name_hash_b VARCHAR(64);

ALTER TABLE kms_index_keys
  ADD COLUMN IF NOT EXISTS slot SMALLINT NOT NULL DEFAULT 0 CHECK (slot IN (0, 1)),
  -- The rotation's new key, wrapped like the current one; NULL between rotations.
  ADD COLUMN IF NOT EXISTS next_encrypted_key BYTEA,
  ADD COLUMN IF NOT EXISTS next_key_hash VARCHAR(64),
  -- Bumped by every change of the keys in use: a lookup made with other keys retries.
  ADD COLUMN IF NOT EXISTS epoch INTEGER NOT NULL DEFAULT 1;
COMMENT ON TABLE kms_index_keys IS 'The blind-index key (and during a rotation the next one), wrapped under the root key; one row';

-- The rotation job: one row, its cursor moved in the same transaction as
-- each batch's rows, as kms_reencryption's.
CREATE TABLE IF NOT EXISTS kms_index_rotation (
  id SMALLINT PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  -- backfill: the new column is being filled; clear: the new key is the key,
  -- the old column is being emptied; done.
  phase TEXT NOT NULL CHECK (phase IN ('backfill', 'clear', 'done')),
  -- failed: rows whose values cannot be read (revoked key, altered bytes)
  -- have no index under the new key; RotateIndexKey again resumes.
  state TEXT NOT NULL CHECK (state IN ('running', 'failed', 'finished')),
  -- The slot the new key fills.
  to_slot SMALLINT NOT NULL CHECK (to_slot IN (0, 1)),
  -- kms_index_keys.epoch the current phase works under.
  epoch INTEGER NOT NULL,
  cursor_id INTEGER NOT NULL DEFAULT 0,
  rows_done BIGINT NOT NULL DEFAULT 0,
  rows_failed BIGINT NOT NULL DEFAULT 0,
  last_error TEXT,
  batch_size INTEGER NOT NULL CHECK (batch_size > 0),
  pause_ms INTEGER NOT NULL CHECK (pause_ms >= 0),
  started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  switched_at TIMESTAMPTZ,
  finished_at TIMESTAMPTZ
);
COMMENT ON TABLE kms_index_rotation IS 'The blind-index key rotation job (one row)';

-- The audit trail holds key events (hundreds at most): checking it under the
-- lock costs milliseconds.
ALTER TABLE kms_audit_events DROP CONSTRAINT IF EXISTS kms_audit_events_kind_check;
-- migrate:lint-ignore constraint-not-valid
ALTER TABLE kms_audit_events ADD CONSTRAINT kms_audit_events_kind_check CHECK (kind IN (
  'key_generated', 'key_rotated', 'key_revoked', 'key_expired', 'key_retired',
  'reencryption_started', 'reencryption_stopped', 'reencryption_finished',
  'root_key_rotated', 'index_key_rotation_started', 'index_key_rotated'));

-- Whichever instance writes, however late its news of a rotation: a written
-- index must be in exactly the columns of the keys in use (SQLSTATE KR003;
-- the writer reloads the index keys and writes again). Only fields whose
-- index columns change are checked, so rows the job has not reached yet
-- keep their other fields as they are. Ordering against a rotation's
-- changes: every such write holds a shared advisory lock (0x6b6d7305) until
-- it commits, and reads the keys after taking it; a change takes it
-- exclusively. Once a rotation has begun, no write that filled only the old
-- column commits, so the job's one pass misses no row.
CREATE OR REPLACE FUNCTION users_index_slots() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  current_slot SMALLINT;
  dual BOOLEAN;
  a TEXT[] := ARRAY[NEW.email_hash, NEW.phone_hash, NEW.name_hash];
  b TEXT[] := ARRAY[NEW.email_hash_b, NEW.phone_hash_b, NEW.name_hash_b];
  changed BOOLEAN[];
BEGIN
  IF TG_OP = 'INSERT' THEN
    changed := ARRAY[true, true, true];
  ELSE
    changed := ARRAY[
      NEW.email_hash IS DISTINCT FROM OLD.email_hash OR NEW.email_hash_b IS DISTINCT FROM OLD.email_hash_b,
      NEW.phone_hash IS DISTINCT FROM OLD.phone_hash OR NEW.phone_hash_b IS DISTINCT FROM OLD.phone_hash_b,
      NEW.name_hash IS DISTINCT FROM OLD.name_hash OR NEW.name_hash_b IS DISTINCT FROM OLD.name_hash_b];
    IF NOT (true = ANY (changed)) THEN
      RETURN NEW;
    END IF;
  END IF;
  PERFORM pg_advisory_xact_lock_shared(x'6b6d7305'::int);
  SELECT slot, next_encrypted_key IS NOT NULL INTO current_slot, dual FROM kms_index_keys WHERE id = 1;
  IF NOT FOUND THEN
    -- No index key yet: nothing written by the service.
    RETURN NEW;
  END IF;
  FOR i IN 1..3 LOOP
    IF changed[i] AND (a[i] IS NOT NULL OR b[i] IS NOT NULL)
       AND ((a[i] IS NOT NULL) <> (current_slot = 0 OR dual)
            OR (b[i] IS NOT NULL) <> (current_slot = 1 OR dual)) THEN
      RAISE EXCEPTION 'a blind index was written under index keys no longer in use'
        USING ERRCODE = 'KR003';
    END IF;
  END LOOP;
  RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS users_index_slots ON users;
CREATE TRIGGER users_index_slots
  BEFORE INSERT OR UPDATE OF email_hash, phone_hash, name_hash,
    email_hash_b, phone_hash_b, name_hash_b ON users
  FOR EACH ROW EXECUTE FUNCTION users_index_slots();
