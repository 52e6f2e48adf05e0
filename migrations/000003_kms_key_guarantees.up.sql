-- What the original kms_data_keys schema lacks: versions unique, at most one
-- active key (its partial unique index on (version, status) allowed several),
-- a per-key encryption count (rotation before the NIST SP 800-38D limit for
-- random nonces), and the blind-index key, wrapped like the data keys but never
-- rotated with them.

-- kms_data_keys holds one row per key version (dozens at most): building these
-- indexes in the migration's transaction locks it for milliseconds.
-- migrate:lint-ignore index-not-concurrent
-- migrate:allow index-not-concurrent "kms_data_keys holds dozens of rows: locked for milliseconds"
CREATE UNIQUE INDEX IF NOT EXISTS idx_kms_data_keys_version_unique ON kms_data_keys (version);

-- migrate:lint-ignore index-not-concurrent
-- migrate:allow index-not-concurrent "kms_data_keys holds dozens of rows: locked for milliseconds"
CREATE UNIQUE INDEX IF NOT EXISTS idx_kms_data_keys_single_active
    ON kms_data_keys ((status)) WHERE status = 'active';

ALTER TABLE kms_data_keys ADD COLUMN IF NOT EXISTS encryption_count BIGINT NOT NULL DEFAULT 0;
COMMENT ON COLUMN kms_data_keys.encryption_count IS 'Values encrypted with this key (approximate, flushed in batches)';

CREATE TABLE IF NOT EXISTS kms_index_keys (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    encrypted_key BYTEA NOT NULL,
    key_hash VARCHAR(64) NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP
);
COMMENT ON TABLE kms_index_keys IS 'The blind-index key, wrapped under the root key; one row, never rotated';
