-- migrate:no-transaction
DROP INDEX CONCURRENTLY IF EXISTS idx_users_username_lower_unique;
