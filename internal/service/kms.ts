import { file_kms_v1_error_reason } from "../../api/kms/v1/error_reason_pb.js";
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import {
  durationFromMs,
  durationMs,
  timestampDate,
  timestampFromDate,
} from "@bufbuild/protobuf/wkt";
import type { DataKeySchema } from "../../api/kms/v1/kms_pb.js";
import { AuditEventKind, KeyStatus, KmsService } from "../../api/kms/v1/kms_pb.js";
import type { AuditEventSchema } from "../../api/kms/v1/kms_pb.js";
import type { AuditEvent as BizAuditEvent, AuditKind } from "../biz/kms/audit_chain.js";
import type { AuditTrail } from "../biz/kms/audit_trail.js";
import type { DataKey, KeyStatus as BizKeyStatus } from "../biz/kms/data_keys.js";
import type { CallerCrypto, FieldCipher } from "../biz/kms/field_cipher.js";
import type { KeyLifecycle } from "../biz/kms/key_lifecycle.js";
import type { KeyQueries } from "../biz/kms/key_queries.js";
import type { RootKeyRotation } from "../biz/kms/root_key_rotation.js";
import type { Reencryption } from "../biz/reencryption.js";
import type { IndexRotation } from "../biz/index_rotation.js";
import { indexRotationStatus, reencryptionStatus } from "./kms_jobs.js";
import { bind, type ServiceBinding } from "../transport/binding.js";

const statuses: Record<BizKeyStatus, KeyStatus> = {
  active: KeyStatus.ACTIVE,
  inactive: KeyStatus.INACTIVE,
  expired: KeyStatus.EXPIRED,
  revoked: KeyStatus.REVOKED,
};
const bizStatus = (s: KeyStatus) =>
  (Object.keys(statuses) as BizKeyStatus[]).find((k) => statuses[k] === s);

/** The KMS's use cases KmsService serves. */
export interface KmsUseCases {
  keys: KeyLifecycle;
  queries: KeyQueries;
  rootKey: RootKeyRotation;
  /** The stores' cipher: its page tokens. */
  cipher: FieldCipher;
  /** KmsService's callers' cipher: a key domain of its own. */
  callerCrypto: CallerCrypto;
  reencryption: Reencryption;
  indexRotation: IndexRotation;
  auditTrail: AuditTrail;
}

/** kms.v1.KmsService: translates messages to the KMS use case, nothing else. */
export function newKmsService({
  keys,
  queries,
  rootKey,
  cipher,
  callerCrypto,
  reencryption,
  indexRotation,
  auditTrail: audit,
}: KmsUseCases): ServiceBinding {
  return bind(
    KmsService,
    {
      async getStatus() {
        const s = await queries.status();
        return {
          initialized: s.active !== undefined,
          algorithm: s.algorithm,
          rotateInterval: durationFromMs(s.rotateIntervalMs),
          activeKey: s.active ? toProto(s.active) : undefined,
          keyStats: s.stats.map((r) => ({
            status: statuses[r.status],
            algorithm: r.algorithm,
            keyCount: r.keyCount,
            earliestCreated: timestampFromDate(r.earliestCreated),
            latestCreated: timestampFromDate(r.latestCreated),
            expiredCount: r.expiredCount,
          })),
          keyUsage: [...s.usage]
            .sort(([a], [b]) => a - b)
            .map(([version, n]) => ({ version, protectedValues: n })),
          unreferencedVersions: s.unreferenced,
          rootKeyId: s.rootKeyId ?? "",
        };
      },
      async listDataKeys(req) {
        const status = req.status === undefined ? undefined : bizStatus(req.status);
        const r = await queries.listKeys(
          { pageSize: req.pageSize, pageToken: req.pageToken, status },
          cipher.pageTokens(),
        );
        return { keys: r.keys.map(toProto), nextPageToken: r.nextPageToken };
      },
      async getDataKey(req) {
        return { key: toProto(await queries.getKey(req.version)) };
      },
      async rotateDataKey(req, call) {
        const r = await keys.rotate(req.reason, call);
        return { key: toProto(r.key), previousVersion: r.previous?.version ?? 0 };
      },
      async revokeDataKey(req, call) {
        const r = await keys.revoke(req.version, req.reason, call);
        return { key: toProto(r.key), activeKey: toProto(r.active) };
      },
      async runMaintenance() {
        const r = await keys.maintenance();
        return {
          expiredVersions: r.expiredVersions,
          rotation: r.rotation
            ? { key: toProto(r.rotation.key), previousVersion: r.rotation.previous?.version ?? 0 }
            : undefined,
          deletedKeys: 0,
        };
      },
      async encryptField(req) {
        return callerCrypto.encryptField(req.fieldName, req.plaintext, req.context);
      },
      async decryptField(req) {
        return callerCrypto.decryptField(req.fieldName, req.ciphertext, req.context);
      },
      async hashField(req) {
        return { hash: callerCrypto.hashField(req.fieldName, req.value) };
      },
      async startReencryption(req, call) {
        const s = await reencryption.start(
          {
            belowVersion: req.belowVersion || undefined,
            batchSize: req.batchSize || undefined,
            pauseMs: req.pause ? durationMs(req.pause) : undefined,
          },
          call,
        );
        return { status: reencryptionStatus(s) };
      },
      async getReencryptionStatus() {
        return { status: reencryptionStatus(await reencryption.status()) };
      },
      async stopReencryption(_req, call) {
        return { status: reencryptionStatus(await reencryption.stop(call)) };
      },
      async rotateRootKey(_req, call) {
        const r = await rootKey.rotate(call);
        return {
          rotated: r.rotated,
          rewrappedKeys: r.rewrapped,
          rootKeyId: r.rootKeyId,
          previousRootKeyId: r.previousRootKeyId,
        };
      },
      async listAuditEvents(req) {
        const r = await audit.list(req, cipher.pageTokens());
        return { events: r.events.map(auditEvent), nextPageToken: r.nextPageToken };
      },
      async verifyAuditTrail(req) {
        const cp = req.checkpoint;
        const v = await audit.verify(
          cp && {
            seq: Number(cp.seq),
            hash: Buffer.from(cp.headHash, "hex"),
            at: cp.time ? timestampDate(cp.time) : new Date(0),
            mac: Buffer.from(cp.mac, "hex"),
          },
        );
        return {
          intact: v.intact,
          eventsChecked: BigInt(v.eventsChecked),
          firstBadSeq: BigInt(v.firstBadSeq),
          problem: v.problem,
          lastHash: v.lastHash.toString("hex"),
          checkpointSeq: cp?.seq ?? 0n,
        };
      },
      async rotateIndexKey(req, call) {
        const r = await indexRotation.start(
          {
            batchSize: req.batchSize || undefined,
            pauseMs: req.pause ? durationMs(req.pause) : undefined,
          },
          call,
        );
        return { started: r.started, status: indexRotationStatus(r.status) };
      },
      async getIndexKeyRotationStatus() {
        return { status: indexRotationStatus(await indexRotation.status()) };
      },
    },
    [file_kms_v1_error_reason],
  );
}

const auditKinds: Record<AuditKind, AuditEventKind> = {
  key_generated: AuditEventKind.KEY_GENERATED,
  key_rotated: AuditEventKind.KEY_ROTATED,
  key_revoked: AuditEventKind.KEY_REVOKED,
  key_expired: AuditEventKind.KEY_EXPIRED,
  key_retired: AuditEventKind.KEY_RETIRED,
  reencryption_started: AuditEventKind.REENCRYPTION_STARTED,
  reencryption_stopped: AuditEventKind.REENCRYPTION_STOPPED,
  reencryption_finished: AuditEventKind.REENCRYPTION_FINISHED,
  root_key_rotated: AuditEventKind.ROOT_KEY_ROTATED,
  index_key_rotation_started: AuditEventKind.INDEX_KEY_ROTATION_STARTED,
  index_key_rotated: AuditEventKind.INDEX_KEY_ROTATED,
};

function auditEvent(e: BizAuditEvent): MessageInitShape<typeof AuditEventSchema> {
  return {
    seq: BigInt(e.seq),
    time: timestampFromDate(e.at),
    kind: auditKinds[e.kind],
    actor: e.actor,
    details: e.details,
    hash: e.hash.toString("hex"),
  };
}

function toProto(k: DataKey): MessageInitShape<typeof DataKeySchema> {
  return {
    id: k.id,
    version: k.version,
    algorithm: k.algorithm,
    status: statuses[k.status],
    createdAt: timestampFromDate(k.createdAt),
    updatedAt: timestampFromDate(k.updatedAt),
    expiresAt: k.expiresAt ? timestampFromDate(k.expiresAt) : undefined,
    metadata: k.metadata as JsonObject,
    encryptionCount: k.encryptionCount,
  };
}
