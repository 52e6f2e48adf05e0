-- KMS data keys: random keys wrapped under the root key, versioned, with a
-- lifecycle status; plus the updated_at trigger and the kms_key_stats view.
-- Reproduces the Go original's schema; its gaps (several active keys allowed,
-- versions not unique) are closed by later migrations, not by editing this one.
CREATE TABLE IF NOT EXISTS kms_data_keys (
    id VARCHAR(36) PRIMARY KEY,
    version INTEGER NOT NULL,
    algorithm VARCHAR(50) NOT NULL DEFAULT 'AES-256-GCM',
    encrypted_key BYTEA NOT NULL,
    key_hash VARCHAR(64) NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'active',
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    expires_at TIMESTAMP WITH TIME ZONE,
    metadata JSONB,
    CONSTRAINT kms_data_keys_status_check
        CHECK (status IN ('active', 'inactive', 'expired', 'revoked')),
    CONSTRAINT kms_data_keys_algorithm_check
        CHECK (algorithm IN ('AES-256-GCM', 'AES-256-CBC', 'ChaCha20-Poly1305', 'SM4-GCM'))
);

CREATE INDEX IF NOT EXISTS idx_kms_data_keys_version ON kms_data_keys (version);
CREATE INDEX IF NOT EXISTS idx_kms_data_keys_status ON kms_data_keys (status);
CREATE INDEX IF NOT EXISTS idx_kms_data_keys_created_at ON kms_data_keys (created_at);
CREATE INDEX IF NOT EXISTS idx_kms_data_keys_expires_at ON kms_data_keys (expires_at);
CREATE INDEX IF NOT EXISTS idx_kms_data_keys_key_hash ON kms_data_keys (key_hash);
CREATE UNIQUE INDEX IF NOT EXISTS idx_kms_data_keys_version_status
    ON kms_data_keys (version, status) WHERE status = 'active';

COMMENT ON TABLE kms_data_keys IS 'KMS data keys, each wrapped under the root key';
COMMENT ON COLUMN kms_data_keys.id IS 'Unique key identifier';
COMMENT ON COLUMN kms_data_keys.version IS 'Key version, carried in every ciphertext';
COMMENT ON COLUMN kms_data_keys.algorithm IS 'Field encryption algorithm';
COMMENT ON COLUMN kms_data_keys.encrypted_key IS 'The data key wrapped under the root key';
COMMENT ON COLUMN kms_data_keys.key_hash IS 'Fingerprint of the key, for verification';
COMMENT ON COLUMN kms_data_keys.status IS 'active, inactive (rotated out), expired, revoked';
COMMENT ON COLUMN kms_data_keys.created_at IS 'Creation time';
COMMENT ON COLUMN kms_data_keys.updated_at IS 'Last update time, kept by a trigger';
COMMENT ON COLUMN kms_data_keys.expires_at IS 'When the key is due for rotation or expiry';
COMMENT ON COLUMN kms_data_keys.metadata IS 'Operator annotations, JSON';

CREATE OR REPLACE FUNCTION update_kms_data_keys_updated_at()
RETURNS TRIGGER AS $$
BEGIN
    NEW.updated_at = CURRENT_TIMESTAMP;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trigger_update_kms_data_keys_updated_at
    BEFORE UPDATE ON kms_data_keys
    FOR EACH ROW
    EXECUTE FUNCTION update_kms_data_keys_updated_at();

CREATE OR REPLACE VIEW kms_key_stats AS
SELECT
    status,
    algorithm,
    COUNT(*) AS key_count,
    MIN(created_at) AS earliest_created,
    MAX(created_at) AS latest_created,
    COUNT(CASE WHEN expires_at IS NOT NULL AND expires_at < CURRENT_TIMESTAMP THEN 1 END) AS expired_count
FROM kms_data_keys
GROUP BY status, algorithm;

COMMENT ON VIEW kms_key_stats IS 'Key counts per status and algorithm';
