-- Back to 000008's trigger, which reads the version from the ciphertext.
DROP TRIGGER IF EXISTS users_refuse_revoked_keys ON users;
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

ALTER TABLE users
  DROP CONSTRAINT IF EXISTS users_email_key_version_present,
  DROP CONSTRAINT IF EXISTS users_phone_key_version_present,
  DROP CONSTRAINT IF EXISTS users_name_key_version_present,
  DROP COLUMN IF EXISTS email_key_version,
  DROP COLUMN IF EXISTS phone_key_version,
  DROP COLUMN IF EXISTS name_key_version;
