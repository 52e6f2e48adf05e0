-- migrate:no-transaction
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_users_phone_hash_b_unique ON users (phone_hash_b);
