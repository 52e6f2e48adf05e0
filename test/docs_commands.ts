// Every command shown in a shell block of README.md or docs/*.md, and what
// runs it: a file (a test or a CI step) and what in that file shows it runs
// that command. test/unit/docs_commands.test.ts holds the docs to this list
// and this list to those files, so a command cannot stay in the docs once
// nothing runs it. Output and placeholders belong in `text` blocks.

/** A file that runs the command, and strings it must hold (all of them). */
export interface RunBy {
  file: string;
  shows: string[];
}

const ci = (...steps: string[]): RunBy => ({ file: ".ci/run", shows: steps });
const tryIt = (...shows: string[]): RunBy => ({
  file: "test/integration/readme_try_it.test.ts",
  shows: ["tryItCommands()", ...shows],
});
const examplesTest = (...shows: string[]): RunBy => ({
  file: "test/integration/examples.test.ts",
  shows,
});
const kmsCli = (...shows: string[]): RunBy => ({
  file: "test/integration/kms_cli.test.ts",
  shows: ["cmd/kms/main.ts", ...shows],
});
const verifyData = (...shows: string[]): RunBy => ({
  file: "test/integration/migrate_verify_data.test.ts",
  shows: ['runMigrate(["verify", "--data", ...args]', ...shows],
});
const auditVerify = (...shows: string[]): RunBy => ({
  file: "test/integration/audit_checkpoints.test.ts",
  shows: ['"audit",', '"verify",', ...shows],
});

/** Keyed by the command as shown: continuation lines joined, a trailing `# comment` dropped. */
export const docsCommands: Record<string, RunBy[]> = {
  // README: run it, test it.
  "npm install && npm start": [
    ci("npm install --no-audit"),
    { file: "test/helpers/process.ts", shows: ['spawnProcess("npm", ["start"'] },
    { file: "test/integration/process.test.ts", shows: ["spawnNpmStart(app"] },
  ],
  "npm install && npm test": [ci("npm install --no-audit", "npm test")],
  "npm run test:unit": [ci("npm run test:unit")],

  // operations.md: the alert rules' unit tests.
  "promtool test rules deploy/prometheus/alerts_test.yaml": [
    {
      file: "test/integration/prometheus.test.ts",
      shows: ['"deploy/prometheus/alerts_test.yaml"', '["test", "rules", RULES_TEST]'],
    },
  ],

  // README: try it (the test runs each exactly as written, ports put in).
  "curl -s localhost:8000/readyz": [tryIt("curl -s localhost:8000\\/readyz")],
  'curl -s -X POST localhost:8000/user.v1.UserService/CreateUser -H \'content-type: application/json\' -d \'{"username":"alice","password":"s3cret-pass","email":"alice@example.com","phone":"+8613800138000","name":"Alice"}\'':
    [tryIt("\\/CreateUser /")],
  'curl -s -X POST localhost:8000/user.v1.UserService/LookupUser -H \'content-type: application/json\' -d \'{"email":" ALICE@example.com","view":"VIEW_MASKED"}\'':
    [tryIt("^curl .*\\/LookupUser /")],
  "curl -s -X POST localhost:8000/user.v1.UserService/GetUser -H 'content-type: application/json' -d '{\"id\":\"0\"}'":
    [tryIt("^curl .*\\/GetUser /")],
  "curl -s -X POST localhost:8000/v1/users:lookup -H 'content-type: application/json' -d '{\"email\":\"alice@example.com\"}'":
    [tryIt("^curl .*\\/v1\\/users:lookup /")],
  "curl -s 'localhost:8000/v1/users?page_size=10&view=VIEW_MASKED'": [
    tryIt("^curl .*\\/v1\\/users\\?page_size=10&view=VIEW_MASKED'$"),
  ],
  "curl -s localhost:8000/v1/users/0": [tryIt("^curl -s localhost:8000\\/v1\\/users\\/0$")],
  "npx buf curl --http2-prior-knowledge --protocol grpc --list-methods http://localhost:9000": [
    tryIt("--list-methods http:\\/\\/localhost:9000$"),
  ],
  'npx buf curl --http2-prior-knowledge --protocol grpc -d \'{"service": ""}\' http://localhost:9000/grpc.health.v1.Health/Check':
    [tryIt("Health\\/Check$")],
  'npx buf curl --http2-prior-knowledge --protocol grpc -d \'{"email":"alice@example.com","view":"VIEW_MASKED"}\' http://localhost:9000/user.v1.UserService/LookupUser':
    [tryIt("localhost:9000\\/user\\.v1\\.UserService\\/LookupUser$")],
  'npx buf curl --schema . -d \'{"id":"0"}\' http://localhost:8000/user.v1.UserService/GetUser': [
    tryIt("--schema \\. .*localhost:8000\\/user\\.v1\\.UserService\\/GetUser$"),
  ],

  // examples/*/README.md: each example built and run, in its folder.
  "./build-offline.sh": [examplesTest('run("./build-offline.sh", [], dir("go"))')],
  "./users": [examplesTest('run("./users", [], dir("go"), grpcEnv(token))')],
  "npx buf generate": [examplesTest('run("npx", ["buf", "generate"], dir("python"))')],
  "/usr/bin/python3 users.py": [
    examplesTest('run("/usr/bin/python3", ["users.py"], dir("python")'),
  ],
  "npx tsx users.ts": [examplesTest('run("npx", ["tsx", "users.ts"], dir("typescript")')],
  "./users.sh": [examplesTest('run("./users.sh", [], dir("curl"), httpEnv(token))')],
  "npx esbuild web/page.ts --bundle --format=esm --outdir=web --servedir=web --serve=127.0.0.1:5173":
    [
      examplesTest(
        '"esbuild",\n        "web/page.ts",\n        "--bundle",\n        "--format=esm",\n        "--outdir=web",\n        "--servedir=web",\n        `--serve=127.0.0.1:${port}`,',
        '{ cwd: dir("typescript") }',
      ),
    ],

  // docs/security.md: a token and its digest.
  "TOKEN=$(openssl rand -base64 32)": [
    { file: "test/unit/docs_commands.test.ts", shows: ["openssl rand -base64 32"] },
  ],
  "printf %s \"$TOKEN\" | sha256sum | cut -d' ' -f1": [
    { file: "test/unit/docs_commands.test.ts", shows: ["openssl rand -base64 32"] },
  ],

  // docs/keys.md: the kms command.
  "export KMS_TOKEN=...": [kmsCli("{ KMS_TOKEN: token }")],
  "npx kms reencrypt start --watch": [kmsCli('"reencrypt",\n      "start",\n      "--watch",')],
  "npx kms reencrypt status --json": [kmsCli('["reencrypt", "status", "--json"')],
  "npx kms reencrypt stop": [kmsCli('["reencrypt", "stop"')],
  "npx kms audit verify --checkpoint /var/lib/kms/audit-checkpoints.jsonl": [
    auditVerify('["--checkpoint", file]'),
  ],
  "npx kms audit verify --checkpoint service.log --json": [
    auditVerify('["--checkpoint", log, "--json"]'),
  ],

  // docs/migrations.md: the migrate command.
  "npm run build": [ci("npm run build")],
  "DATABASE_URL=postgres://user@host:5432/app npx migrate status": [
    { file: "test/helpers/migrations.ts", shows: ["DATABASE_URL: db.url"] },
    { file: "test/integration/migrate.test.ts", shows: ['migrate(db, ["status"'] },
  ],
  "npx migrate create rename_username --expand rename-column --table users --column username --to login --type 'varchar(255)'":
    [
      {
        file: "test/integration/migrate_expand_generate.test.ts",
        shows: ['"create",', '"rename_username",', '"rename-column",', '"varchar(255)",'],
      },
    ],
  "npx migrate lint": [
    { file: "test/integration/migrate_lint.test.ts", shows: ['migrate(db, ["lint", "--dir", dir'] },
  ],

  // docs/zero-downtime.md: the phases.
  "npx migrate up --phase expand": [
    { file: "test/integration/migrate_phases.test.ts", shows: ['"--phase", "expand"'] },
  ],
  "npx migrate up --phase contract": [
    { file: "test/integration/migrate_phases.test.ts", shows: ['"--phase", "contract"]'] },
  ],
  "npx migrate status --embedded": [
    { file: "test/integration/process.test.ts", shows: ['runMigrate(["status", "--embedded"]'] },
  ],

  // docs/migrations.md: locks and retries.
  "npx migrate locks --json": [
    { file: "test/integration/migrate_locks.test.ts", shows: ['["locks", "--json"'] },
  ],
  "npx migrate up --no-retry": [
    { file: "test/integration/migrate_locks.test.ts", shows: ['"--no-retry"]'] },
  ],
  "npx migrate up --old-transactions=refuse": [
    { file: "test/integration/migrate_locks.test.ts", shows: ['"--old-transactions=refuse"'] },
  ],

  // docs/migrations.md: backup, events and the restore drill.
  "npx migrate up --backup-command 'pg_dump --format=custom --no-owner --file=/backups/pre-up.dump \"$DATABASE_URL\" && echo /backups/pre-up.dump'":
    [
      {
        file: "test/integration/migrate_backup.test.ts",
        shows: [
          '"--backup-command",',
          'pg_dump --format=custom --no-owner --file=${dump} "$DATABASE_URL" && echo ${dump}',
        ],
      },
    ],
  "npx migrate up --events migrate-events.jsonl": [
    { file: "test/integration/migrate_backup.test.ts", shows: ['"--events", eventsFile'] },
  ],
  "npx migrate up --events -": [
    { file: "test/integration/migrate_backup.test.ts", shows: ['"--events", "-"]'] },
  ],
  // docs/migrations.md: verify --data (the test's verify() runs `verify --data`).
  "npx migrate verify --data -conf /etc/app/config.yaml": [verifyData('verify(["-conf", conf])')],
  "npx migrate verify --data -conf /etc/app/config.yaml --json": [
    verifyData('verify(["-conf", conf, "--json"])'),
  ],
  "npx migrate verify --data -conf /etc/app/config.yaml --from 48000": [
    verifyData('["--from", String(ids[1])]', "...from"),
  ],
  'pg_restore --no-owner --dbname="$RESTORE_URL" /backups/pre-up.dump': [
    {
      file: "test/integration/migrate_backup.test.ts",
      shows: ['spawnSync("pg_restore", ["--no-owner", `--dbname=${restored.url}`, dump]'],
    },
  ],
  'npx migrate status --database-url "$RESTORE_URL"': [
    { file: "test/integration/migrate_backup.test.ts", shows: ['migrate(restored, ["status"'] },
  ],
  'npx migrate verify --database-url "$RESTORE_URL"': [
    { file: "test/integration/migrate_backup.test.ts", shows: ['migrate(restored, ["verify"'] },
  ],

  // docs/migrations.md: rehearsal.
  "npx migrate verify": [
    { file: "test/integration/migrate_verify.test.ts", shows: ['migrate(db, ["verify"])'] },
  ],
  "npx migrate verify --json": [
    {
      file: "test/integration/migrate_verify.test.ts",
      shows: ['migrate(db, ["verify", "--json"])'],
    },
  ],
  "npx migrate up --verify": [
    {
      file: "test/integration/migrate_verify.test.ts",
      shows: ['migrate(target, ["up", "--verify"])'],
    },
  ],
  "npx migrate up --rehearse": [
    {
      file: "test/integration/migrate_rehearse.test.ts",
      shows: ['migrate(db, ["up", "--rehearse",'],
    },
  ],
  "npx migrate plan --schema-from=replay": [
    {
      file: "test/integration/migrate_rehearse.test.ts",
      shows: ['migrate(db, ["plan", "--schema-from=replay",'],
    },
  ],
  "npx migrate up --rehearse=target": [
    {
      file: "test/integration/migrate_rehearse.test.ts",
      shows: ['migrate(db, ["up", "--rehearse=target",'],
    },
  ],

  // docs/development.md: what CI runs.
  "npm run lint": [ci("npm run lint")],
  "npm run typecheck": [ci("npm run typecheck")],
  "npm run buf:lint": [ci("npm run buf:lint")],
  "npm run generate": [ci("npm run generate")],
  "npm test": [ci("npm test")],
  "npm run test:reliability": [ci("npm run test:reliability")],
};
