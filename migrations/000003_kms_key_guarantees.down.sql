-- Undoes 000003 in reverse order.
DROP TABLE IF EXISTS kms_index_keys;
ALTER TABLE kms_data_keys DROP COLUMN IF EXISTS encryption_count;
DROP INDEX IF EXISTS idx_kms_data_keys_single_active;
DROP INDEX IF EXISTS idx_kms_data_keys_version_unique;
