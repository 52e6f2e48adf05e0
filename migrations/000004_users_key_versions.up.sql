-- Each user row records which data key versions protect its encrypted fields,
-- so the KMS can count what every key still protects and a re-encryption job
-- can find the rows of a key (GIN index in 000007).
ALTER TABLE users ADD COLUMN IF NOT EXISTS key_versions INTEGER[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN users.key_versions IS 'Data key versions of the encrypted fields of this row';
COMMENT ON COLUMN users.password IS 'Password hash with its parameters (scrypt), never the password';
COMMENT ON COLUMN users.email_hash IS 'Keyed blind index (HMAC-SHA256) of the normalised email';
COMMENT ON COLUMN users.phone_hash IS 'Keyed blind index (HMAC-SHA256) of the normalised phone';
COMMENT ON COLUMN users.name_hash IS 'Keyed blind index (HMAC-SHA256) of the normalised name';
