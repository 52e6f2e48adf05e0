-- migrate:no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_key_versions ON users USING gin (key_versions);
