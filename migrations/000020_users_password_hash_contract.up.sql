-- Made by `migrate create --expand rename-column`: rename "password" to "password_hash".
-- Contract: completes 000019_users_password_hash_expand; apply once no instance of the previous release runs.
-- migrate:phase contract 19

-- Checks every row without blocking writes (SHARE UPDATE EXCLUSIVE); SET
-- NOT NULL then trusts it and scans nothing.
ALTER TABLE "users" VALIDATE CONSTRAINT "users_password_hash_not_null";

ALTER TABLE "users" ALTER COLUMN "password_hash" SET NOT NULL;

ALTER TABLE "users" DROP CONSTRAINT "users_password_hash_not_null";

DROP TRIGGER "users_password_hash_sync" ON "users";

DROP FUNCTION "users_password_hash_sync"();

-- migrate:allow ban-drop-column "the contract phase: no instance of the release that reads password runs any more"
ALTER TABLE "users" DROP COLUMN "password";
