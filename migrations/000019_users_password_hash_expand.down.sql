-- Undoes the expand: the trigger, its function, the new column(s).

DROP TRIGGER IF EXISTS "users_password_hash_sync" ON "users";

DROP FUNCTION IF EXISTS "users_password_hash_sync"();

ALTER TABLE "users"
  DROP CONSTRAINT IF EXISTS "users_password_hash_not_null";

ALTER TABLE "users"
  DROP COLUMN IF EXISTS "password_hash";

-- After the contract's down the old column came back nullable: as it was.
ALTER TABLE "users"
  ALTER COLUMN "password" SET NOT NULL;
