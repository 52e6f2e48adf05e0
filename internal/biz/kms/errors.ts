import { ErrorReason, ErrorReasonSchema } from "../../../api/kms/v1/error_reason_pb.js";
import { errorFactory, hasReason } from "../errors.js";

/** The KMS cannot start: wrong root key, unsupported algorithm… */
export class KmsInitError extends Error {
  override name = "KmsInitError";
}

const kmsError = errorFactory(ErrorReasonSchema);

/** A field failed because its key is revoked. */
export const isKeyRevoked = (err: unknown) =>
  hasReason(err, ErrorReasonSchema, ErrorReason.KEY_REVOKED);

/** A field failed because its stored bytes, or its key's stored row, were altered. */
export const isDataCorrupt = (err: unknown) =>
  hasReason(err, ErrorReasonSchema, ErrorReason.CIPHERTEXT_INVALID) ||
  hasReason(err, ErrorReasonSchema, ErrorReason.DATA_KEY_CORRUPT);

export const kmsErrors = {
  keyNotFound: (version: number) =>
    kmsError("NOT_FOUND", ErrorReason.KEY_NOT_FOUND, `no data key has version ${version}`, {
      version: String(version),
    }),
  keyRevoked: (version: number) =>
    kmsError(
      "FAILED_PRECONDITION",
      ErrorReason.KEY_REVOKED,
      `data key version ${version} is revoked`,
      {
        version: String(version),
      },
    ),
  ciphertextInvalid: () =>
    kmsError(
      "INVALID_ARGUMENT",
      ErrorReason.CIPHERTEXT_INVALID,
      "ciphertext is malformed, altered, or belongs to another field or context",
    ),
  dataKeyCorrupt: (version: number) =>
    kmsError(
      "DATA_LOSS",
      ErrorReason.DATA_KEY_CORRUPT,
      `data key version ${version} does not unwrap: its stored row was altered or damaged`,
      { version: String(version) },
    ),
  storedKeyCorrupt: (label: string) =>
    kmsError(
      "DATA_LOSS",
      ErrorReason.DATA_KEY_CORRUPT,
      `the stored key ${label} does not unwrap under either root key: its row was altered or damaged; nothing was re-wrapped`,
      { key: label },
    ),
  reencryptionRunning: () =>
    kmsError(
      "FAILED_PRECONDITION",
      ErrorReason.REENCRYPTION_RUNNING,
      "a re-encryption job is already running (GetReencryptionStatus; StopReencryption)",
    ),
  rootKeyMismatch: (problem: string) =>
    kmsError("FAILED_PRECONDITION", ErrorReason.ROOT_KEY_MISMATCH, problem),
  indexesNotReady: (missing: string[]) =>
    kmsError(
      "FAILED_PRECONDITION",
      ErrorReason.INDEXES_NOT_READY,
      `the blind-index rotation needs these indexes, missing or INVALID: ${missing.join(", ")} (run migrate up, or rebuild them)`,
      { indexes: missing.join(",") },
    ),
  notReady: () =>
    kmsError("UNAVAILABLE", ErrorReason.KMS_NOT_READY, "the KMS has no usable active key yet"),
  invalidPageToken: () =>
    kmsError(
      "INVALID_ARGUMENT",
      ErrorReason.INVALID_PAGE_TOKEN,
      "page_token was not issued for this query",
      {
        field: "page_token",
      },
    ),
};
