-- Undoes 000004.
COMMENT ON COLUMN users.name_hash IS NULL;
COMMENT ON COLUMN users.phone_hash IS NULL;
COMMENT ON COLUMN users.email_hash IS NULL;
COMMENT ON COLUMN users.password IS NULL;
ALTER TABLE users DROP COLUMN IF EXISTS key_versions;
