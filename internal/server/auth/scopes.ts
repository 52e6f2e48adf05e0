/** What a token may be allowed to do. */
export const allScopes = [
  "kms.admin",
  "kms.crypto",
  "users.read",
  "users.write",
  "users.login",
  "pii.read",
  "metrics.read",
] as const;
export type Scope = (typeof allScopes)[number];

/**
 * The scope each RPC needs, by `package.Service/Method`. A method missing
 * here is refused to everyone (fail closed); a test checks that every served
 * method is listed. `pii.read` is not needed to call: without it, user reads
 * come back masked.
 */
export const methodScopes: Readonly<Record<string, Scope>> = {
  "kms.v1.KmsService/GetStatus": "kms.admin",
  "kms.v1.KmsService/ListDataKeys": "kms.admin",
  "kms.v1.KmsService/GetDataKey": "kms.admin",
  "kms.v1.KmsService/RotateDataKey": "kms.admin",
  "kms.v1.KmsService/RevokeDataKey": "kms.admin",
  "kms.v1.KmsService/RunMaintenance": "kms.admin",
  "kms.v1.KmsService/StartReencryption": "kms.admin",
  "kms.v1.KmsService/GetReencryptionStatus": "kms.admin",
  "kms.v1.KmsService/StopReencryption": "kms.admin",
  "kms.v1.KmsService/RotateIndexKey": "kms.admin",
  "kms.v1.KmsService/GetIndexKeyRotationStatus": "kms.admin",
  "kms.v1.KmsService/RotateRootKey": "kms.admin",
  "kms.v1.KmsService/ListAuditEvents": "kms.admin",
  "kms.v1.KmsService/VerifyAuditTrail": "kms.admin",
  "kms.v1.KmsService/EncryptField": "kms.crypto",
  "kms.v1.KmsService/DecryptField": "kms.crypto",
  "kms.v1.KmsService/HashField": "kms.crypto",
  "user.v1.UserService/GetUser": "users.read",
  "user.v1.UserService/LookupUser": "users.read",
  "user.v1.UserService/ListUsers": "users.read",
  "user.v1.UserService/CreateUser": "users.write",
  "user.v1.UserService/UpdateUser": "users.write",
  "user.v1.UserService/DeleteUser": "users.write",
  "user.v1.UserService/VerifyPassword": "users.login",
};
