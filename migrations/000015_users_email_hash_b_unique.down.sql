-- migrate:no-transaction
DROP INDEX CONCURRENTLY IF EXISTS idx_users_email_hash_b_unique;
