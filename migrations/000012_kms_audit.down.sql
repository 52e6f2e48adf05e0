-- Drops the audit trail with its key: the events are lost.
DROP TABLE IF EXISTS kms_audit_events;
DROP FUNCTION IF EXISTS kms_audit_events_append_only();
DROP TABLE IF EXISTS kms_audit_key;
