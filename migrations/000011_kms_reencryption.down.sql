DROP TABLE IF EXISTS kms_reencryption;
