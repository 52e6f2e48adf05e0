-- Which root key the stored keys (data keys, index key, audit key) are wrapped
-- under, by its public id (HKDF of the key, never the key). Written by the
-- first instance that proves its root key; changed only by a root-key
-- rotation, which re-wraps every stored key in the same transaction.
CREATE TABLE IF NOT EXISTS kms_root_key (
  id SMALLINT PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  key_id TEXT NOT NULL CHECK (key_id ~ '^[0-9a-f]{32}$'),
  recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  rotated_at TIMESTAMPTZ
);
COMMENT ON TABLE kms_root_key IS 'The id of the root key every stored key is wrapped under; one row';
