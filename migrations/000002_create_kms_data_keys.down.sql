-- Drops the KMS objects in reverse dependency order: view, trigger, trigger
-- function, indexes (listed for clarity; the table takes them along), table.
DROP VIEW IF EXISTS kms_key_stats;
DROP TRIGGER IF EXISTS trigger_update_kms_data_keys_updated_at ON kms_data_keys;
DROP FUNCTION IF EXISTS update_kms_data_keys_updated_at();
DROP INDEX IF EXISTS idx_kms_data_keys_version_status;
DROP INDEX IF EXISTS idx_kms_data_keys_key_hash;
DROP INDEX IF EXISTS idx_kms_data_keys_expires_at;
DROP INDEX IF EXISTS idx_kms_data_keys_created_at;
DROP INDEX IF EXISTS idx_kms_data_keys_status;
DROP INDEX IF EXISTS idx_kms_data_keys_version;
DROP TABLE IF EXISTS kms_data_keys;
