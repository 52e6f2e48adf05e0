-- migrate:no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_name_hash_b ON users (name_hash_b);
