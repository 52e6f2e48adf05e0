-- Made by `migrate create --expand rename-column`: rename "password" to "password_hash".
-- Expand: backward compatible. The previous release keeps reading and writing the
-- old column(s); a trigger keeps old and new in step both ways (a write that
-- changes both: the new side wins); the backfill (last) fills the rows before.
-- Completed by 000020_users_password_hash_contract once no instance of the previous release runs.
-- migrate:phase expand
--
-- The column holds a hash (scrypt, with its parameters), never a password:
-- this names it so. The release before it reads and writes "password"; this
-- one only "password_hash". NOT NULL comes back in the contract, validated
-- there without blocking writes; until then the check below holds every new
-- row (the trigger fills the column before it is checked).

ALTER TABLE "users"
  ADD COLUMN "password_hash" varchar(255);

COMMENT ON COLUMN "users"."password_hash" IS 'Password hash with its parameters (scrypt), never the password';

ALTER TABLE "users"
  ADD CONSTRAINT "users_password_hash_not_null" CHECK ("password_hash" IS NOT NULL) NOT VALID;

CREATE FUNCTION "users_password_hash_sync"() RETURNS trigger
LANGUAGE plpgsql AS $sync$
#variable_conflict use_column
DECLARE
  new_written boolean;
  old_written boolean;
BEGIN
  IF TG_OP = 'INSERT' THEN
    new_written := NEW."password_hash" IS NOT NULL;
    old_written := NEW."password" IS NOT NULL;
  ELSE
    new_written := NEW."password_hash" IS DISTINCT FROM OLD."password_hash";
    old_written := NEW."password" IS DISTINCT FROM OLD."password";
  END IF;
  IF new_written THEN
    IF (SELECT NEW."password_hash" IS DISTINCT FROM ("password")::varchar(255) FROM (SELECT NEW.*) AS "users") THEN
      NEW."password" := (SELECT ("password_hash") FROM (SELECT NEW.*) AS "users");
    END IF;
  ELSIF old_written THEN
    IF (SELECT NEW."password" IS DISTINCT FROM ("password_hash")::varchar(255) FROM (SELECT NEW.*) AS "users") THEN
      SELECT ("password") INTO NEW."password_hash" FROM (SELECT NEW.*) AS "users";
    END IF;
  END IF;
  RETURN NEW;
END
$sync$;

CREATE TRIGGER "users_password_hash_sync"
  BEFORE INSERT OR UPDATE OF "password", "password_hash" ON "users"
  FOR EACH ROW EXECUTE FUNCTION "users_password_hash_sync"();

-- migrate:backfill batch=1000
UPDATE "users"
  SET "password_hash" = ("password")
  WHERE "password_hash" IS NULL AND (("password") IS NOT NULL);
