DROP TABLE IF EXISTS kms_root_key;
