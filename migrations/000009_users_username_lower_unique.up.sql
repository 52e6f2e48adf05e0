-- migrate:no-transaction
-- Usernames are unique whatever their case (caseX and CaseX are one account),
-- as emails are; lookups compare lower(username) through this index.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_users_username_lower_unique ON users (lower(username));
