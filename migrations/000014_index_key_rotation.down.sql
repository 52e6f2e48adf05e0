-- Back to one index column per field. Refused while a rotation is under way;
-- after a rotation to slot 1 its indexes move back to the slot-0 columns.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM kms_index_keys WHERE next_encrypted_key IS NOT NULL)
     OR EXISTS (SELECT 1 FROM kms_index_rotation WHERE phase <> 'done') THEN
    RAISE EXCEPTION 'a blind-index key rotation is under way: let it finish (GetIndexKeyRotationStatus) before reverting 000014';
  END IF;
END
$$;

DROP TRIGGER IF EXISTS users_index_slots ON users;
DROP FUNCTION IF EXISTS users_index_slots();

UPDATE users SET email_hash = email_hash_b, phone_hash = phone_hash_b, name_hash = name_hash_b
 WHERE EXISTS (SELECT 1 FROM kms_index_keys WHERE slot = 1);

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
  DROP COLUMN IF EXISTS name_hash_b;
