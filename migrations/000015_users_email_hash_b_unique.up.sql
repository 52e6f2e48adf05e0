-- migrate:no-transaction
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_users_email_hash_b_unique ON users (email_hash_b);
