import { randomBytes } from "node:crypto";
import type { DataKeyRepo } from "../../../internal/biz/kms/data_keys.js";
import { newFieldCipher, type FieldCipher } from "../../../internal/biz/kms/field_cipher.js";
import { newIndexKeyHolder, type IndexKeys } from "../../../internal/biz/kms/index_keys.js";
import { newKeyring } from "../../../internal/biz/kms/keyring.js";
import { encryptionUsage } from "../../../internal/biz/kms/kms_usage.js";
import { pageTokens } from "../../../internal/biz/paging.js";
import { RootKeys } from "../../../internal/biz/kms/root_keys.js";
import type { FakeDataKeys } from "./data_keys.js";
import { ROOT_KEY } from "./key_rows.js";

/** kms_index_keys in memory: the keys in use, as a rotation changes them. */
export interface FakeIndexKeys {
  current: IndexKeys;
  /** How many times an instance loaded them. */
  loads: number;
}

export function fakeIndexKeys(): FakeIndexKeys {
  return { current: { epoch: 1, slot: 0, key: randomBytes(32), next: undefined }, loads: 0 };
}

/**
 * The real field cipher (real keyring, AES-GCM, blind indexes) over fake
 * storage: what an instance holds, loading from `keys` and `index`. Not a
 * fake itself: only its storage is.
 */
export function realFieldCipher(keys: FakeDataKeys, index: FakeIndexKeys): FieldCipher {
  const keyring = newKeyring(
    keys as Partial<DataKeyRepo> as DataKeyRepo,
    new RootKeys(ROOT_KEY),
    60_000,
  );
  const copy = (k: IndexKeys): IndexKeys => ({
    ...k,
    key: Buffer.from(k.key),
    next: k.next && Buffer.from(k.next),
  });
  const holder = newIndexKeyHolder(copy(index.current), async () => {
    index.loads++;
    return copy(index.current);
  });
  return newFieldCipher(keyring, holder, pageTokens(Buffer.alloc(32, 3)), encryptionUsage());
}
