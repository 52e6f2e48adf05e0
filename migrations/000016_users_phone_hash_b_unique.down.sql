-- migrate:no-transaction
DROP INDEX CONCURRENTLY IF EXISTS idx_users_phone_hash_b_unique;
