// Values used when configs/config.yaml leaves a key out. Kratos' defaults for
// the ports; everything else errs on the safe side for production.
export const defaults = {
  server: {
    grpc: {
      addr: "0.0.0.0:9000",
      timeout: "30s",
      max_request_bytes: 4 * 1024 * 1024,
      max_concurrent_streams: 256,
      stream_window_bytes: 65_535,
      connection_window_bytes: 16 * 1024 * 1024,
      keepalive_time: "2h",
      keepalive_timeout: "20s",
      min_ping_interval: "10s",
    },
    http: { addr: "0.0.0.0:8000", timeout: "30s", max_request_bytes: 4 * 1024 * 1024 },
    shutdown_timeout: "10s",
    drain_delay: "0s",
    idle_timeout: "120s",
    max_inflight_request_bytes: 256 * 1024 * 1024,
  },
  data: {
    database: {
      source: "",
      direct_source: "",
      pool_size: 10,
      migrate: "check",
      connect_timeout: "5s",
      migration: {
        dir: "",
        lock_wait: "60s",
        lock_timeout: "5s",
        statement_timeout: "10m",
        lock_attempts: 5,
        old_transaction_age: "1m",
        old_transactions: "wait",
        lint_error_rows: 100_000,
        lint_error_bytes: 64 * 1024 * 1024,
        backup_command: "",
        backup_timeout: "1h",
        heartbeat_interval: "10s",
      },
    },
  },
  kms: {
    algorithm: "AES-256-GCM",
    rotate_interval: "720h",
    max_encryptions_per_key: String(2 ** 30),
    cache_ttl: "30s",
    maintenance_interval: "30s",
    reencryption_batch_size: 500,
    reencryption_pause: "0s",
    audit_checkpoints: {
      every_events: 100,
      interval: "5m",
      poll_interval: "10s",
      file: "",
      http_url: "",
      http_timeout: "5s",
    },
  },
  log: { level: "info", format: "auto", request_sample: 1 },
  // Closed unless a config opens it (configs/config.yaml does, for development).
  auth: {
    enabled: true,
    tokens: [],
    protect_metrics: false,
    max_login_attempts: 5,
    lock_duration: "15m",
    max_token_bytes: 8192,
  },
  limits: {
    password_hash_concurrency: 2,
    password_hash_queue: 64,
    password_hashes_per_caller: 4,
    calls_per_second: 0,
    burst: 0,
    auth_failures_per_minute: 60,
    auth_failure_burst: 20,
  },
} as const;

// The migrate tool run without a config file: an operator's command may wait
// longer for the database than a starting server should.
export const migrateToolDefaults = { connect_timeout: "10s" } as const;
