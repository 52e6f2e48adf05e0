import { pathToString } from "@bufbuild/protobuf/reflect";
import { createValidator } from "@bufbuild/protovalidate";
import type { Guard } from "../../transport/middleware.js";
import { rpcErrors } from "../errors.js";
import { nulField } from "./text.js";

/**
 * Checks each request against the buf.validate rules in its proto. A
 * violation is INVALID_ARGUMENT naming the field (ErrorInfo metadata "field",
 * all violations in a google.rpc.BadRequest); the value is never echoed.
 * A string holding NUL is refused the same way, whatever the field. A
 * request its transport refused never reaches the handler.
 */
export function validation(): Guard {
  const validator = createValidator();
  return (call) => {
    if (call.refused) throw call.refused;
    const nul = nulField(call.method.input, call.request);
    if (nul !== undefined) {
      throw rpcErrors.invalidField(call.service, nul, "string.no_nul", "contains a NUL character");
    }
    const result = validator.validate(call.method.input, call.request);
    if (result.kind === "valid") return;
    if (result.kind === "error") throw result.error;
    const violations = result.error.violations.map((v) => ({
      field: pathToString(v.field) || call.method.input.name,
      description: v.message,
      reason: v.ruleId,
    }));
    const first = violations[0]!;
    throw rpcErrors.invalidField(
      call.service,
      first.field,
      first.reason,
      first.description,
      violations,
    );
  };
}
