-- Each encrypted field's data key version in a column of its own, written by
-- the service beside the ciphertext: the revocation check and the KMS's
-- usage counts read these, and only the KMS parses ciphertexts.
ALTER TABLE users
  ADD COLUMN IF NOT EXISTS email_key_version INTEGER,
  ADD COLUMN IF NOT EXISTS phone_key_version INTEGER,
  ADD COLUMN IF NOT EXISTS name_key_version INTEGER;

-- Rows written before: their version is bytes 2..5 of the ciphertext (format
-- 0x01). This is the last time SQL reads it. (Updating only these columns
-- does not fire 000008's trigger, which watches the ciphertext columns.)
UPDATE users SET
  email_key_version = CASE WHEN length(email_encrypted) >= 6 THEN
    (get_byte(email_encrypted, 2) << 24) | (get_byte(email_encrypted, 3) << 16)
      | (get_byte(email_encrypted, 4) << 8) | get_byte(email_encrypted, 5) END,
  phone_key_version = CASE WHEN length(phone_encrypted) >= 6 THEN
    (get_byte(phone_encrypted, 2) << 24) | (get_byte(phone_encrypted, 3) << 16)
      | (get_byte(phone_encrypted, 4) << 8) | get_byte(phone_encrypted, 5) END,
  name_key_version = CASE WHEN length(name_encrypted) >= 6 THEN
    (get_byte(name_encrypted, 2) << 24) | (get_byte(name_encrypted, 3) << 16)
      | (get_byte(name_encrypted, 4) << 8) | get_byte(name_encrypted, 5) END
 WHERE email_encrypted IS NOT NULL OR phone_encrypted IS NOT NULL OR name_encrypted IS NOT NULL;

-- A ciphertext without its version would escape the revocation check below.
-- (The table is already held by the ALTER above: validating at once costs
-- no further lock.)
ALTER TABLE users ADD CONSTRAINT users_email_key_version_present
  CHECK ((email_encrypted IS NULL) = (email_key_version IS NULL)) NOT VALID;
ALTER TABLE users ADD CONSTRAINT users_phone_key_version_present
  CHECK ((phone_encrypted IS NULL) = (phone_key_version IS NULL)) NOT VALID;
ALTER TABLE users ADD CONSTRAINT users_name_key_version_present
  CHECK ((name_encrypted IS NULL) = (name_key_version IS NULL)) NOT VALID;
-- migrate:allow constraint-missing-not-valid "users was small when 000010 shipped; the scan runs under the ACCESS EXCLUSIVE lock the ALTER above already holds, so it adds time, not another lock"
ALTER TABLE users VALIDATE CONSTRAINT users_email_key_version_present;
-- migrate:allow constraint-missing-not-valid "users was small when 000010 shipped; the scan runs under the ACCESS EXCLUSIVE lock the ALTER above already holds, so it adds time, not another lock"
ALTER TABLE users VALIDATE CONSTRAINT users_phone_key_version_present;
-- migrate:allow constraint-missing-not-valid "users was small when 000010 shipped; the scan runs under the ACCESS EXCLUSIVE lock the ALTER above already holds, so it adds time, not another lock"
ALTER TABLE users VALIDATE CONSTRAINT users_name_key_version_present;

-- 000008's refusal of values under a revoked key, reading the version
-- columns. The ordering against a revocation is unchanged: a shared advisory
-- lock (0x6b6d7302) per write, taken exclusively by RevokeDataKey.
CREATE OR REPLACE FUNCTION users_refuse_revoked_keys() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  written int[];
  revoked int;
BEGIN
  written := array_remove(ARRAY[
    CASE WHEN TG_OP = 'INSERT' OR NEW.email_encrypted IS DISTINCT FROM OLD.email_encrypted
           OR NEW.email_key_version IS DISTINCT FROM OLD.email_key_version THEN NEW.email_key_version END,
    CASE WHEN TG_OP = 'INSERT' OR NEW.phone_encrypted IS DISTINCT FROM OLD.phone_encrypted
           OR NEW.phone_key_version IS DISTINCT FROM OLD.phone_key_version THEN NEW.phone_key_version END,
    CASE WHEN TG_OP = 'INSERT' OR NEW.name_encrypted IS DISTINCT FROM OLD.name_encrypted
           OR NEW.name_key_version IS DISTINCT FROM OLD.name_key_version THEN NEW.name_key_version END
  ], NULL);
  IF cardinality(written) = 0 THEN
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

DROP TRIGGER IF EXISTS users_refuse_revoked_keys ON users;
CREATE TRIGGER users_refuse_revoked_keys
  BEFORE INSERT OR UPDATE OF email_encrypted, phone_encrypted, name_encrypted,
    email_key_version, phone_key_version, name_key_version ON users
  FOR EACH ROW EXECUTE FUNCTION users_refuse_revoked_keys();
