-- No value is stored under a revoked data key, whichever instance writes it
-- and however stale its key cache: a write to users whose new ciphertexts
-- name a revoked key version is refused (SQLSTATE KR001), and the writer
-- re-encrypts under the active key.
-- Ordering against a revocation: every such write holds a shared advisory
-- lock (0x6b6d7302) until it commits, and reads the key status after taking
-- it; a revocation takes the same lock exclusively before marking the key.
-- So the revocation waits for writes already checked, and writes after it
-- see it: once RevokeDataKey has returned, no write under that key commits.
-- (A row lock on kms_data_keys would also order them, but would starve
-- rotation behind a steady stream of writers.)
-- The key version is bytes 2..5 of the ciphertext (format 0x01).
CREATE OR REPLACE FUNCTION users_refuse_revoked_keys() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  written int[];
  revoked int;
BEGIN
  SELECT array_agg((get_byte(c, 2) << 24) | (get_byte(c, 3) << 16) | (get_byte(c, 4) << 8) | get_byte(c, 5))
    INTO written
    FROM unnest(ARRAY[
      CASE WHEN TG_OP = 'INSERT' OR NEW.email_encrypted IS DISTINCT FROM OLD.email_encrypted THEN NEW.email_encrypted END,
      CASE WHEN TG_OP = 'INSERT' OR NEW.phone_encrypted IS DISTINCT FROM OLD.phone_encrypted THEN NEW.phone_encrypted END,
      CASE WHEN TG_OP = 'INSERT' OR NEW.name_encrypted IS DISTINCT FROM OLD.name_encrypted THEN NEW.name_encrypted END
    ]) AS c
   WHERE c IS NOT NULL AND length(c) >= 6;
  IF written IS NULL THEN
    RETURN NEW;
  END IF;
  PERFORM pg_advisory_xact_lock_shared(x'6b6d7302'::int);
  SELECT min(version) INTO revoked
    FROM kms_data_keys
   WHERE version = ANY (written) AND status = 'revoked';
  IF revoked IS NOT NULL THEN
    RAISE EXCEPTION 'data key version % is revoked', revoked USING ERRCODE = 'KR001';
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER users_refuse_revoked_keys
  BEFORE INSERT OR UPDATE OF email_encrypted, phone_encrypted, name_encrypted ON users
  FOR EACH ROW EXECUTE FUNCTION users_refuse_revoked_keys();
