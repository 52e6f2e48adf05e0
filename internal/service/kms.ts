import { KmsService } from "../../api/kms/v1/kms_pb.js";
import { bind, type ServiceBinding } from "../pkg/rpc/call.js";

/**
 * kms.v1.KmsService: translates messages to the KMS use cases. No method is
 * served yet (the KMS issue brings them); each answers UNIMPLEMENTED.
 */
export function newKmsService(): ServiceBinding {
  return bind(KmsService, {});
}
