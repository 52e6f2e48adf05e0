-- Undoes the contract: what the expand left, the old side refilled from the new,
-- so that the previous release can run again.

ALTER TABLE "users" ADD COLUMN "password" varchar(255);

COMMENT ON COLUMN "users"."password" IS 'Password hash with its parameters (scrypt), never the password';

ALTER TABLE "users"
  ADD CONSTRAINT "users_password_hash_not_null" CHECK ("password_hash" IS NOT NULL) NOT VALID;

ALTER TABLE "users" ALTER COLUMN "password_hash" DROP NOT NULL;

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

-- migrate:backfill
UPDATE "users"
  SET "password" = ("password_hash")
  WHERE "password" IS NULL AND ("password_hash") IS NOT NULL;
