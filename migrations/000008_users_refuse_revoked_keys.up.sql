-- No value is stored under a revoked data key, whichever instance writes it
-- and however stale its key cache: a write to users whose new ciphertexts
-- name a revoked key version is refused (SQLSTATE KR001), and the writer
-- re-encrypts under the active key. FOR SHARE orders it against a revocation
-- committing at the same moment: one waits for the other, so once
-- RevokeDataKey has returned, no write under that key can commit.
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
  SELECT min(k.version) INTO revoked
    FROM (SELECT version, status FROM kms_data_keys WHERE version = ANY (written) FOR SHARE) AS k
   WHERE k.status = 'revoked';
  IF revoked IS NOT NULL THEN
    RAISE EXCEPTION 'data key version % is revoked', revoked USING ERRCODE = 'KR001';
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER users_refuse_revoked_keys
  BEFORE INSERT OR UPDATE OF email_encrypted, phone_encrypted, name_encrypted ON users
  FOR EACH ROW EXECUTE FUNCTION users_refuse_revoked_keys();
