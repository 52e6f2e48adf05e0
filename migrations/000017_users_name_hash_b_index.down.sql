-- migrate:no-transaction
DROP INDEX CONCURRENTLY IF EXISTS idx_users_name_hash_b;
