import { durationMs } from "@bufbuild/protobuf/wkt";
import type { Kms } from "../conf/conf_pb.js";
import { KmsUsecase } from "../biz/kms_usecase.js";
import { loadRootKey } from "../pkg/kms/rootkey.js";
import type { Logger } from "../pkg/log/logger.js";
import type { Data } from "./data.js";
import { newDataKeyRepo } from "./kms_repo.js";

/** The KMS use case on this database, initialised: index key and active key ready, root key proven. */
export async function openKms(conf: Kms, data: Data, log: Logger): Promise<KmsUsecase> {
  const rootKey = loadRootKey(conf);
  const ms = (d: Parameters<typeof durationMs>[0] | undefined, fallback: number) =>
    d ? durationMs(d) : fallback;
  const kms = new KmsUsecase(
    newDataKeyRepo(data.pool, data.url, log),
    rootKey,
    {
      algorithm: conf.algorithm,
      rotateIntervalMs: ms(conf.rotateInterval, 720 * 3600_000),
      maxEncryptionsPerKey: Number(conf.maxEncryptionsPerKey || 2 ** 30),
      cacheTtlMs: ms(conf.cacheTtl, 30_000),
      maintenanceIntervalMs: ms(conf.maintenanceInterval, 30_000),
    },
    log,
  );
  await kms.init();
  return kms;
}
