-- Back to one index column per field. 000018's guard has made sure the key
-- fills slot 0 and no rotation is under way; checked again here.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM kms_index_keys WHERE next_encrypted_key IS NOT NULL OR slot = 1)
     OR EXISTS (SELECT 1 FROM kms_index_rotation WHERE phase <> 'done') THEN
    RAISE EXCEPTION 'the blind indexes live in the *_hash_b columns or a rotation is under way: rotate the index key until it fills slot 0 before reverting 000014'
      USING ERRCODE = 'KR004';
  END IF;
END
$$;

-- The audit trail is append-only: once it records an index-key rotation,
-- its wider check stays (those events stay too).
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM kms_audit_events WHERE kind = 'index_key_rotation_started') THEN
    ALTER TABLE kms_audit_events DROP CONSTRAINT IF EXISTS kms_audit_events_kind_check;
    ALTER TABLE kms_audit_events ADD CONSTRAINT kms_audit_events_kind_check CHECK (kind IN (
      'key_generated', 'key_rotated', 'key_revoked', 'key_expired', 'key_retired',
      'reencryption_started', 'reencryption_stopped', 'reencryption_finished',
      'root_key_rotated', 'index_key_rotated'));
  END IF;
END
$$;

DROP TABLE IF EXISTS kms_index_rotation;
ALTER TABLE kms_index_keys
  DROP COLUMN IF EXISTS slot,
  DROP COLUMN IF EXISTS next_encrypted_key,
  DROP COLUMN IF EXISTS next_key_hash,
  DROP COLUMN IF EXISTS epoch;
ALTER TABLE users
  DROP COLUMN IF EXISTS email_hash_b,
  DROP COLUMN IF EXISTS phone_hash_b,
  DROP COLUMN IF EXISTS name_hash_b,
  DROP COLUMN IF EXISTS index_epoch;
