import { AUDIT_KEY_LABEL, INDEX_KEY_LABEL } from "../../pkg/kms/wrap.js";
import type { Logger } from "../../pkg/log/logger.js";
import { pageTokens, type PageTokens } from "../paging.js";
import type { AuditChain } from "./audit_chain.js";
import type { DataKeyRepo } from "./data_keys.js";
import { KmsInitError } from "./errors.js";
import { loadIndexKeys, type IndexKeys } from "./index_keys.js";
import type { KeyMint } from "./key_mint.js";
import type { Keyring } from "./keyring.js";
import type { RootKeys } from "./root_keys.js";
import type { MakeKey, StoredKeys } from "./stored_keys.js";

/** What a started KMS holds: the index keys in use, and the page-token codec every instance shares. */
export interface Bootstrapped {
  index: IndexKeys;
  pageTokens: PageTokens;
}

/**
 * Ensures an index key, an audit key and an active data key exist (creating
 * them once across instances), and proves the root key unwraps them: a
 * wrong root key stops start-up here (KmsInitError) rather than at the first
 * decryption. Loads the audit key into `audit`.
 */
export async function bootstrap(p: {
  stored: StoredKeys;
  keys: Pick<DataKeyRepo, "rotate">;
  keyring: Keyring;
  roots: RootKeys;
  mint: KeyMint;
  audit: AuditChain;
  log: Logger;
  /**
   * Make nothing and record nothing (a reader such as `migrate verify
   * --data`): a key missing is a KmsInitError, not one made.
   */
  readOnly?: boolean;
}): Promise<Bootstrapped> {
  const { stored, roots, audit } = p;
  const recorded = await stored.rootKeyId();
  if (recorded !== undefined && !roots.holds(recorded)) {
    throw new KmsInitError(notHeld(roots, recorded));
  }
  const singleton = (
    kept: (make: MakeKey) => Promise<Buffer>,
    label: string,
    name: string,
    under: string,
  ) =>
    singletonKey(
      roots,
      kept,
      p.readOnly ? missing(name) : () => p.mint.singleton(label, under),
      label,
      name,
    );
  // The index key first: where it exists it proves the root key before
  // anything new is wrapped under it. The audit key before the initial
  // data key, whose creation is an audited event. Keys made here (a fresh
  // database) go under the recorded root key.
  let tokens: PageTokens | undefined;
  const index = await singleton(
    (m) => stored.indexKey(m),
    INDEX_KEY_LABEL,
    "index key",
    recorded ?? roots.currentId,
  );
  try {
    // A database from before kms_root_key: the key that unwrapped its
    // index key is the one it is under.
    const under = recorded ?? (p.readOnly ? index.id : await stored.recordRootKeyId(index.id));
    if (under !== index.id && recorded === undefined) {
      throw new KmsInitError("another instance recorded another root key at the same time");
    }
    const auditKey = await singleton(
      (m) => stored.auditKey(m),
      AUDIT_KEY_LABEL,
      "audit key",
      under,
    );
    audit.use(auditKey.key);
    // Page tokens outlive index-key rotations: their key comes from the
    // audit key (HKDF, a label of its own), which never rotates.
    tokens = pageTokens(auditKey.key);
    if (!p.readOnly)
      await p.keys.rotate(
        (v, id) => p.mint.dataKey(v, "initial key", id),
        (active) => active === undefined,
      );
    await p.keyring.active().catch((err: unknown) => {
      throw new KmsInitError(
        `cannot load the active data key: ${(err as Error).message} (a wrong root key, or an altered row)`,
      );
    });
  } catch (err) {
    audit.forget();
    tokens?.destroy();
    throw err;
  } finally {
    index.key.fill(0);
  }
  let keys: IndexKeys;
  try {
    keys = await loadIndexKeys(stored, roots);
  } catch (err) {
    audit.forget();
    tokens!.destroy();
    throw new KmsInitError(`cannot load the index keys: ${(err as Error).message}`);
  }
  if (roots.expiredPreviousId) {
    p.log.warn(
      `kms.previous_root_key's window ended at ${roots.previousUntil!.toISOString()}; it is not used: remove it from the configuration`,
    );
  } else if (roots.previousId && (recorded ?? index.id) === roots.currentId) {
    roots.dropPrevious();
    p.log.info(
      "the stored keys are under kms.root_key: kms.previous_root_key is not used and can be removed",
    );
  }
  return { index: keys, pageTokens: tokens! };
}

/** A reader's MakeKey: the key should exist by now. */
const missing = (name: string) => (): never => {
  throw new KmsInitError(
    `the database holds no ${name}: the service has not run on it (nothing to read under the KMS)`,
  );
};

function notHeld(roots: RootKeys, recorded: string): string {
  if (recorded === roots.expiredPreviousId) {
    return `the stored keys are still wrapped under kms.previous_root_key, whose window ended at ${roots.previousUntil!.toISOString()}: extend kms.previous_root_key.until and rotate the root key (kms root-key rotate) (refusing to start)`;
  }
  return "the root key is not the one the stored keys are wrapped under: wrong root key (refusing to start)";
}

/**
 * A key of its own kind (index, audit), made by `make` the first time
 * across instances and kept wrapped; unwrapped here, which proves the root
 * key.
 */
async function singletonKey(
  roots: RootKeys,
  kept: (make: MakeKey) => Promise<Buffer>,
  make: MakeKey,
  label: string,
  name: string,
): Promise<{ key: Buffer; id: string }> {
  const wrapped = await kept(make);
  try {
    return roots.unwrap(wrapped, label);
  } catch {
    throw new KmsInitError(
      `the root key does not unwrap the stored ${name}: wrong root key (refusing to start)`,
    );
  }
}
