import type { MigrationFile } from "../../internal/migrate/source.js";

// The populated schema every lint case runs against: the first migration
// builds it, so the cases see existing tables as a real project would.
export const BASE_SCHEMA = `
CREATE TABLE users (id bigint PRIMARY KEY, name varchar(10), price numeric(10,2), email text, age int);
CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint, total numeric, status text);
CREATE INDEX orders_user_id ON orders (user_id);
CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz);
CREATE MATERIALIZED VIEW order_totals AS SELECT user_id, sum(total) AS total FROM orders GROUP BY user_id;
INSERT INTO users SELECT g, 'u' || g, g, 'u' || g || '@x', 20 FROM generate_series(1, 50) g;
INSERT INTO orders SELECT g, 1 + g % 50, g, 'new' FROM generate_series(1, 200) g;
`;

/** A migration in memory: version, up text, and a down file unless `down` is false. */
export function migration(
  version: number,
  up: string,
  down: string | false = "SELECT 1;",
): MigrationFile {
  const name = `${String(version).padStart(6, "0")}_case`;
  return {
    name,
    version: BigInt(version),
    upPath: `${name}.up.sql`,
    downPath: down === false ? undefined : `${name}.down.sql`,
    up,
    down: down === false ? undefined : down,
    checksum: "",
  };
}
