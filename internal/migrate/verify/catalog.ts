import type pg from "pg";
import { BACKUPS_TABLE } from "../backup.js";
import { FAILURES_TABLE } from "../failure_record.js";
import { INSTANCES_TABLE } from "../instances.js";
import { BACKFILLS_TABLE } from "../backfill/progress_record.js";
import { CONSENTS_TABLE } from "../consent_record.js";
import { MIGRATIONS_TABLE } from "../seams/node_pg_migrate.js";

// A database's schema as PostgreSQL's own catalog renders it, for `migrate
// verify` to compare the target with its migrations replayed.
//
// Why the catalog and not a schema-diff library: @pgkit/migra 0.6.1 installs
// and runs offline against this server, but it answers with a SQL script
// that would reconcile the two databases, not with the objects that differ;
// naming each difference in words would mean parsing that script back, and
// it brings 42 packages (tRPC, zod, its own client). The server's renderers
// (pg_get_indexdef, pg_get_constraintdef, pg_get_functiondef,
// pg_get_triggerdef, pg_get_viewdef, format_type, pg_get_expr) are exact by
// construction: both sides are rendered by the same server, under the same
// search_path, so equal text is an equal object.
//
// Not compared: ownership and privileges, comments, statistics, policies,
// publications, event triggers, storage options of tables, the values of
// sequences and a column's position (data, not schema).

export type ObjectKind =
  | "schema"
  | "extension"
  | "type"
  | "table"
  | "column"
  | "constraint"
  | "index"
  | "sequence"
  | "view"
  | "materialized view"
  | "function"
  | "trigger";

/** Value of an attribute; null when the object has none (no default, no identity). */
export type Attributes = Record<string, string | null>;

export interface CatalogObject {
  kind: ObjectKind;
  /** How a person names it: `users.nickname`, `idx_users_email_hash`, `f(integer)`; schema-qualified outside public. */
  name: string;
  /** The key of the object that holds it (a column's table), reported in its place when that one is missing or extra. */
  parent: string | null;
  /** The SQL that makes it, as the server renders it: quoted in reports. */
  definition: string;
  /** What is compared, attribute by attribute. */
  attributes: Attributes;
  /** Reported when it differs, but not a difference (an extension's version). */
  informative: Attributes;
}

/** Every object, keyed by `kind name` (unique per database: the identity compared across the two). */
export type Catalog = Record<string, CatalogObject>;

export const objectKey = (kind: ObjectKind, name: string) => `${kind} ${name}`;

/** Bounds for the read: it must not queue behind a migration's lock, nor run forever. */
export interface ReadBounds {
  lockTimeoutMs: number;
  statementTimeoutMs: number;
}

// The schemas PostgreSQL keeps for itself; every other one is compared.
const USER_SCHEMA = (ns: string) =>
  `${ns}.nspname NOT IN ('pg_catalog', 'information_schema') AND ${ns}.nspname !~ '^pg_(toast|temp_)'`;

// Objects an extension made come and go with it: the extension is compared, not them.
const NOT_FROM_EXTENSION = (catalog: string, oid: string) =>
  `NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = '${catalog}'::regclass AND x.objid = ${oid} AND x.deptype = 'e')`;

// Relations (tables, views, sequences) compared: user schemas, not an extension's, not migrate's own.
const RELATION = (c: string) =>
  `${NOT_FROM_EXTENSION("pg_class", `${c}.oid`)} AND ${c}.oid <> ALL($1::oid[])
   AND EXISTS (SELECT 1 FROM pg_namespace n WHERE n.oid = ${c}.relnamespace AND ${USER_SCHEMA("n")})`;

const HOLDER = (c: string) =>
  `CASE ${c}.relkind WHEN 'm' THEN 'materialized view ' WHEN 'v' THEN 'view ' ELSE 'table ' END || ${c}.oid::regclass::text`;

// Each query returns rows of one shape: kind, name, parent, definition, attributes, informative.
const QUERIES: string[] = [
  `SELECT 'schema', quote_ident(n.nspname), NULL,
          'CREATE SCHEMA ' || quote_ident(n.nspname), '{}'::jsonb, '{}'::jsonb
     FROM pg_namespace n WHERE ${USER_SCHEMA("n")} AND ${NOT_FROM_EXTENSION("pg_namespace", "n.oid")}`,

  `SELECT 'extension', quote_ident(e.extname), NULL,
          'CREATE EXTENSION ' || quote_ident(e.extname) || ' SCHEMA ' || e.extnamespace::regnamespace::text,
          jsonb_build_object('schema', e.extnamespace::regnamespace::text), jsonb_build_object('version', e.extversion)
     FROM pg_extension e`,

  // Enums and domains: the types a migration makes that a column then uses.
  `SELECT 'type', t.oid::regtype::text, NULL,
          CASE t.typtype WHEN 'e' THEN 'CREATE TYPE ' || t.oid::regtype::text || ' AS ENUM (' || labels.list || ')'
               ELSE 'CREATE DOMAIN ' || t.oid::regtype::text || ' AS ' || format_type(t.typbasetype, t.typtypmod) END,
          jsonb_build_object('labels', labels.list, 'base type', CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
                             'nullability', CASE WHEN t.typnotnull THEN 'NOT NULL' END, 'default', t.typdefault, 'checks', checks.list),
          '{}'::jsonb
     FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     LEFT JOIN LATERAL (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) AS list
                          FROM pg_enum e WHERE e.enumtypid = t.oid) labels ON t.typtype = 'e'
     LEFT JOIN LATERAL (SELECT string_agg(quote_ident(c.conname) || ' ' || pg_get_constraintdef(c.oid), '; ' ORDER BY c.conname) AS list
                          FROM pg_constraint c WHERE c.contypid = t.oid) checks ON t.typtype = 'd'
    WHERE t.typtype IN ('e', 'd') AND ${USER_SCHEMA("n")} AND ${NOT_FROM_EXTENSION("pg_type", "t.oid")}`,

  `SELECT 'table', c.oid::regclass::text, NULL,
          'CREATE ' || CASE c.relpersistence WHEN 'u' THEN 'UNLOGGED ' ELSE '' END || 'TABLE ' || c.oid::regclass::text,
          jsonb_build_object('persistence', CASE c.relpersistence WHEN 'u' THEN 'UNLOGGED' ELSE 'LOGGED' END,
                             'partition key', CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
                             'partition bound', pg_get_expr(c.relpartbound, c.oid),
                             'inherits', (SELECT string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno) FROM pg_inherits i WHERE i.inhrelid = c.oid),
                             'row level security', CASE WHEN c.relforcerowsecurity THEN 'FORCED' WHEN c.relrowsecurity THEN 'ENABLED' END),
          '{}'::jsonb
     FROM pg_class c WHERE c.relkind IN ('r', 'p') AND ${RELATION("c")}`,

  `SELECT 'column', c.oid::regclass::text || '.' || quote_ident(a.attname), 'table ' || c.oid::regclass::text,
          'ALTER TABLE ' || c.oid::regclass::text || ' ADD COLUMN ' || concat_ws(' ', quote_ident(a.attname), format_type(a.atttypid, a.atttypmod),
             CASE WHEN a.attcollation <> t.typcollation THEN 'COLLATE ' || co.oid::regcollation::text END,
             CASE WHEN a.attgenerated <> '' THEN 'GENERATED ALWAYS AS (' || pg_get_expr(d.adbin, d.adrelid) || ')' END,
             CASE a.attidentity WHEN 'a' THEN 'GENERATED ALWAYS AS IDENTITY' WHEN 'd' THEN 'GENERATED BY DEFAULT AS IDENTITY' END,
             CASE WHEN a.attnotnull THEN 'NOT NULL' END,
             CASE WHEN a.attgenerated = '' THEN 'DEFAULT ' || pg_get_expr(d.adbin, d.adrelid) END),
          jsonb_build_object('type', format_type(a.atttypid, a.atttypmod),
                             'collation', CASE WHEN a.attcollation <> t.typcollation THEN co.oid::regcollation::text END,
                             'nullability', CASE WHEN a.attnotnull THEN 'NOT NULL' ELSE 'NULL' END,
                             'default', CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END,
                             'generated', CASE a.attgenerated WHEN 's' THEN pg_get_expr(d.adbin, d.adrelid) || ' STORED'
                                                              WHEN 'v' THEN pg_get_expr(d.adbin, d.adrelid) || ' VIRTUAL' END,
                             'identity', CASE a.attidentity WHEN 'a' THEN 'ALWAYS' WHEN 'd' THEN 'BY DEFAULT' END),
          '{}'::jsonb
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_type t ON t.oid = a.atttypid
     LEFT JOIN pg_collation co ON co.oid = a.attcollation
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND ${RELATION("c")}`,

  // NOT NULL constraints (PostgreSQL 18 lists them) are the columns' nullability.
  `SELECT 'constraint', c.oid::regclass::text || '.' || quote_ident(k.conname), ${HOLDER("c")},
          'ALTER TABLE ' || c.oid::regclass::text || ' ADD CONSTRAINT ' || quote_ident(k.conname) || ' ' || pg_get_constraintdef(k.oid),
          jsonb_build_object('definition', pg_get_constraintdef(k.oid)), '{}'::jsonb
     FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
    WHERE k.contype <> 'n' AND ${RELATION("c")}`,

  // An index a constraint owns (primary key, unique, exclusion) is the constraint's.
  `SELECT 'index', i.indexrelid::regclass::text, ${HOLDER("c")}, pg_get_indexdef(i.indexrelid),
          jsonb_build_object('definition', pg_get_indexdef(i.indexrelid), 'validity', CASE WHEN i.indisvalid THEN 'valid' ELSE 'INVALID' END),
          '{}'::jsonb
     FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
    WHERE ${RELATION("c")}
      AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x'))`,

  // An identity column's sequence is the column's identity.
  `SELECT 'sequence', c.oid::regclass::text, 'table ' || o.refobjid::regclass::text,
          'CREATE SEQUENCE ' || c.oid::regclass::text || ' AS ' || format_type(s.seqtypid, NULL) || ' INCREMENT ' || s.seqincrement
            || ' MINVALUE ' || s.seqmin || ' MAXVALUE ' || s.seqmax || ' START ' || s.seqstart || ' CACHE ' || s.seqcache
            || CASE WHEN s.seqcycle THEN ' CYCLE' ELSE '' END,
          jsonb_build_object('type', format_type(s.seqtypid, NULL), 'increment', s.seqincrement::text, 'minimum', s.seqmin::text,
                             'maximum', s.seqmax::text, 'start', s.seqstart::text, 'cache', s.seqcache::text,
                             'cycle', CASE WHEN s.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END,
                             'owned by', o.refobjid::regclass::text || '.' || quote_ident(a.attname)),
          '{}'::jsonb
     FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
     LEFT JOIN pg_depend o ON o.classid = 'pg_class'::regclass AND o.objid = c.oid AND o.refclassid = 'pg_class'::regclass AND o.deptype IN ('a', 'i')
     LEFT JOIN pg_attribute a ON a.attrelid = o.refobjid AND a.attnum = o.refobjsubid
    WHERE o.deptype IS DISTINCT FROM 'i' AND ${RELATION("c")}`,

  `SELECT CASE c.relkind WHEN 'v' THEN 'view' ELSE 'materialized view' END, c.oid::regclass::text, NULL,
          'CREATE ' || CASE c.relkind WHEN 'v' THEN 'VIEW ' ELSE 'MATERIALIZED VIEW ' END || c.oid::regclass::text || ' AS' || chr(10) || pg_get_viewdef(c.oid, true),
          jsonb_build_object('definition', pg_get_viewdef(c.oid, true), 'options', array_to_string(c.reloptions, ', ')),
          '{}'::jsonb
     FROM pg_class c WHERE c.relkind IN ('v', 'm') AND ${RELATION("c")}`,

  // pg_get_functiondef does not render aggregates: their signature and state function stand in.
  `SELECT 'function', p.oid::regprocedure::text, NULL, def.text, jsonb_build_object('definition', def.text), '{}'::jsonb
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     CROSS JOIN LATERAL (SELECT CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid)
                                ELSE (SELECT 'CREATE AGGREGATE ' || p.oid::regprocedure::text || ' (SFUNC = ' || g.aggtransfn::text
                                             || ', STYPE = ' || format_type(g.aggtranstype, NULL) || ', FINALFUNC = ' || g.aggfinalfn::text
                                             || ', INITCOND = ' || coalesce(quote_literal(g.agginitval), 'NULL') || ')'
                                        FROM pg_aggregate g WHERE g.aggfnoid = p.oid) END AS text) def
    WHERE ${USER_SCHEMA("n")} AND ${NOT_FROM_EXTENSION("pg_proc", "p.oid")}`,

  `SELECT 'trigger', c.oid::regclass::text || '.' || quote_ident(t.tgname), ${HOLDER("c")}, pg_get_triggerdef(t.oid),
          jsonb_build_object('definition', pg_get_triggerdef(t.oid),
                             'enabled', CASE t.tgenabled WHEN 'O' THEN 'ENABLED' WHEN 'D' THEN 'DISABLED'
                                                         WHEN 'R' THEN 'ENABLED REPLICA' WHEN 'A' THEN 'ENABLED ALWAYS' END),
          '{}'::jsonb
     FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE NOT t.tgisinternal AND ${RELATION("c")}`,
];

// migrate's bookkeeping (pgmigrations, the consent, backup, failure and
// instance records, backfills in flight, golang-migrate's schema_migrations
// once adopted) and what they own: not the project's schema.
const BOOKKEEPING = `
  WITH t AS (SELECT r::oid AS oid FROM unnest(ARRAY[to_regclass($1), to_regclass($2), to_regclass($3), to_regclass($4), to_regclass($5), to_regclass($6), to_regclass('schema_migrations')]) r WHERE r IS NOT NULL)
  SELECT oid::text FROM t
  UNION SELECT d.objid::text FROM pg_depend d JOIN t ON d.refobjid = t.oid
         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')`;

interface Row {
  kind: ObjectKind;
  name: string;
  parent: string | null;
  definition: string;
  attributes: Record<string, unknown>;
  informative: Record<string, unknown>;
}

/**
 * Reads the schema of the database `client` is connected to, in one
 * read-only snapshot, under a fixed search_path (pg_catalog, public), so
 * that two databases on the same server render alike. Takes no lock that
 * DDL waits for beyond what the catalog functions take, within `bounds`.
 */
export function readCatalog(client: pg.ClientBase, bounds: ReadBounds): Promise<Catalog> {
  return inSnapshot(client, bounds, () => catalogOf(client));
}

/**
 * Runs `fn` in one read-only REPEATABLE READ transaction of `client`, under
 * the fixed search_path catalogOf renders with, within `bounds`: what `fn`
 * reads (the record of what ran, then the catalog) is one moment's state.
 */
export async function inSnapshot<T>(
  client: pg.ClientBase,
  bounds: ReadBounds,
  fn: () => Promise<T>,
): Promise<T> {
  await client.query(
    `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
     SET LOCAL search_path = pg_catalog, public;
     SET LOCAL lock_timeout = ${Math.max(0, Math.floor(bounds.lockTimeoutMs))};
     SET LOCAL statement_timeout = ${Math.max(0, Math.floor(bounds.statementTimeoutMs))}`,
  );
  try {
    return await fn();
  } finally {
    await client.query("ROLLBACK").catch(() => undefined);
  }
}

/** The schema as read inside inSnapshot. */
export async function catalogOf(client: pg.ClientBase): Promise<Catalog> {
  const ignored = await client.query<{ oid: string }>(BOOKKEEPING, [
    MIGRATIONS_TABLE,
    CONSENTS_TABLE,
    BACKUPS_TABLE,
    FAILURES_TABLE,
    INSTANCES_TABLE,
    BACKFILLS_TABLE,
  ]);
  const oids = ignored.rows.map((r) => r.oid);
  const catalog: Catalog = {};
  for (const sql of QUERIES) {
    const { rows } = await client.query<Row>(
      `SELECT * FROM (${sql}) AS o(kind, name, parent, definition, attributes, informative)`,
      sql.includes("$1") ? [oids] : [],
    );
    for (const r of rows) {
      catalog[objectKey(r.kind, r.name)] = {
        kind: r.kind,
        name: r.name,
        parent: r.parent,
        definition: r.definition,
        attributes: text(r.attributes),
        informative: text(r.informative),
      };
    }
  }
  return catalog;
}

function text(attrs: Record<string, unknown>): Attributes {
  return Object.fromEntries(
    Object.entries(attrs).map(([k, v]) => [k, v === null || v === undefined ? null : String(v)]),
  );
}
