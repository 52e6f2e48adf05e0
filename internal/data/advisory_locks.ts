/**
 * Every PostgreSQL advisory lock the service takes, by what it guards.
 * Ids are 0x6b6d73.. ("kms"); the migration tool's lock is node-pg-migrate's
 * own id (internal/migrate/seams/node_pg_migrate.ts), distinct from all of these.
 *
 * Taken in this order within a transaction, never the other way round:
 * keyRotation, indexKeys, then rows (FOR UPDATE), auditTrail last of all.
 * An id a migration's trigger takes too is written there as a literal
 * (x'6b6d7302'::int): MIRRORED_IN names those migrations, and a unit test
 * checks both sides agree. Changing such an id needs a new migration.
 */
export const ADVISORY_LOCKS = {
  /**
   * Serialises changes of which data key is active and of what stored keys
   * are wrapped under: data-key rotations and expiry, root-key rotation,
   * the start of an index-key rotation. Transaction-scoped, exclusive.
   */
  keyRotation: 0x6b6d7301,
  /**
   * Taken exclusively by a revocation; every write of a users row takes it
   * shared (the trigger of migrations 000008 and 000010), as does a
   * re-encryption batch, so no write under a key being revoked commits
   * after the revocation returns.
   */
  revocation: 0x6b6d7302,
  /** Held (session-level) by the one instance working on the re-encryption job. */
  reencryptionJob: 0x6b6d7303,
  /** Serialises audit-trail appends, so each event follows the one before. Taken last. */
  auditTrail: 0x6b6d7304,
  /**
   * Taken exclusively by a rotation's changes of the index keys; every
   * write of an index takes it shared (the trigger of migration 000018).
   */
  indexKeys: 0x6b6d7305,
  /** Held (session-level) by the one instance working on the index-key rotation. */
  indexRotationJob: 0x6b6d7306,
  /**
   * Serialises the creation of public.migrate_instances (transaction-scoped):
   * servers starting together and the migrator may all find it missing, and
   * two concurrent CREATE TABLE IF NOT EXISTS can fail on the catalog.
   */
  instancesTable: 0x6b6d7307,
} as const;

export type AdvisoryLock = keyof typeof ADVISORY_LOCKS;

/** The migrations whose SQL holds a lock's id as a literal: change both together. */
export const MIRRORED_IN: Readonly<Partial<Record<AdvisoryLock, readonly string[]>>> = {
  revocation: ["000008_users_refuse_revoked_keys", "000010_users_field_key_versions"],
  indexKeys: ["000018_users_index_slots"],
};
