-- Reverting 000014-000018 leaves one index column per field, slot 0: refused
-- while a rotation is under way or the key fills slot 1 (rotate the index key
-- once more first), before 000017-000015 drop the indexes the service uses.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM kms_index_keys WHERE next_encrypted_key IS NOT NULL OR slot = 1)
     OR EXISTS (SELECT 1 FROM kms_index_rotation WHERE phase <> 'done') THEN
    RAISE EXCEPTION 'the blind indexes live in the *_hash_b columns or a rotation is under way: finish it and rotate the index key until it fills slot 0 (GetIndexKeyRotationStatus, kms_index_keys.slot) before reverting 000018'
      USING ERRCODE = 'KR004';
  END IF;
END
$$;

DROP TRIGGER IF EXISTS users_index_slots ON users;
DROP FUNCTION IF EXISTS users_index_slots();
