DROP TRIGGER IF EXISTS users_refuse_revoked_keys ON users;
DROP FUNCTION IF EXISTS users_refuse_revoked_keys();
