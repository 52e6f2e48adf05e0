-- Drops the users table (its indexes go with it).
DROP TABLE IF EXISTS users;
