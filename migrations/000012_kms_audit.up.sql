-- The audit trail of key events: append-only. Each event carries a keyed hash
-- (HMAC-SHA256 under the audit key, computed by the service) over itself and
-- the previous event's hash, so an event removed, edited or inserted by hand
-- breaks the chain that VerifyAuditTrail checks. The database refuses UPDATE,
-- DELETE and TRUNCATE; a superuser can bypass that, not the chain.
CREATE TABLE IF NOT EXISTS kms_audit_events (
  seq BIGINT PRIMARY KEY CHECK (seq > 0),
  at TIMESTAMPTZ NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN (
    'key_generated', 'key_rotated', 'key_revoked', 'key_expired', 'key_retired',
    'reencryption_started', 'reencryption_stopped', 'reencryption_finished',
    'root_key_rotated', 'index_key_rotated')),
  actor TEXT NOT NULL,
  -- Versions, reasons, counts: text values only, never key material.
  details JSONB NOT NULL DEFAULT '{}'::jsonb,
  prev_hash BYTEA NOT NULL,
  hash BYTEA NOT NULL
);
COMMENT ON TABLE kms_audit_events IS 'Key events, append-only, hash-chained (HMAC under the audit key)';

CREATE OR REPLACE FUNCTION kms_audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'kms_audit_events is append-only: % refused', TG_OP
    USING ERRCODE = 'KR002';
END
$$;

CREATE TRIGGER kms_audit_events_no_update_delete
  BEFORE UPDATE OR DELETE ON kms_audit_events
  FOR EACH ROW EXECUTE FUNCTION kms_audit_events_append_only();

CREATE TRIGGER kms_audit_events_no_truncate
  BEFORE TRUNCATE ON kms_audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION kms_audit_events_append_only();

-- The key that seals the chain: random, wrapped under the root key like the
-- index key, one row.
CREATE TABLE IF NOT EXISTS kms_audit_key (
  id SMALLINT PRIMARY KEY CHECK (id = 1),
  encrypted_key BYTEA NOT NULL,
  key_hash VARCHAR(64) NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE kms_audit_key IS 'The audit-chain key, wrapped under the root key; one row';
