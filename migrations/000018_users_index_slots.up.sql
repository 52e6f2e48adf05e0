-- Whichever instance writes, however late its news of a rotation: a written
-- index must have been made under the index keys in use now (the row's
-- index_epoch is kms_index_keys.epoch) and sit in exactly their columns
-- (SQLSTATE KR003; the writer reloads the index keys and writes again).
-- Only fields whose index columns change and end with a value are checked,
-- so rows the job has not reached yet keep their other fields as they are. Ordering against a rotation's
-- changes: every such write holds a shared advisory lock (0x6b6d7305) until
-- it commits, and reads the keys after taking it; a change takes it
-- exclusively. Once a rotation has begun, no write that filled only the old
-- column commits, so the job's one pass misses no row.
CREATE OR REPLACE FUNCTION users_index_slots() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  current_slot SMALLINT;
  current_epoch INTEGER;
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
  SELECT slot, epoch, next_encrypted_key IS NOT NULL INTO current_slot, current_epoch, dual
    FROM kms_index_keys WHERE id = 1;
  IF NOT FOUND THEN
    -- No index key yet: nothing written by the service.
    RETURN NEW;
  END IF;
  FOR i IN 1..3 LOOP
    IF changed[i] AND (a[i] IS NOT NULL OR b[i] IS NOT NULL)
       AND (NEW.index_epoch IS DISTINCT FROM current_epoch
            OR (a[i] IS NOT NULL) <> (current_slot = 0 OR dual)
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
