import { pathToString } from "@bufbuild/protobuf/reflect";
import { Code } from "@connectrpc/connect";
import { createValidator } from "@bufbuild/protovalidate";
import { BadRequestSchema } from "../../../third_party/google/rpc/error_details_pb.js";
import type { Middleware } from "../../pkg/rpc/call.js";
import { serviceError } from "../errors.js";
import { nulField } from "./text.js";

/**
 * Checks each request against the buf.validate rules in its proto. A
 * violation is INVALID_ARGUMENT naming the field (ErrorInfo metadata "field",
 * all violations in a google.rpc.BadRequest); the value is never echoed.
 * A string holding NUL is refused the same way, whatever the field. A
 * request its transport refused never reaches the handler.
 */
export function validation(): Middleware {
  const validator = createValidator();
  return (next) => async (call) => {
    if (call.refused) throw call.refused;
    const nul = nulField(call.method.input, call.request);
    if (nul !== undefined) {
      throw serviceError(
        call.service,
        Code.InvalidArgument,
        "VALIDATION_FAILED",
        `invalid ${nul}: contains a NUL character`,
        { field: nul, rule: "string.no_nul" },
      );
    }
    const result = validator.validate(call.method.input, call.request);
    if (result.kind === "valid") return next(call);
    if (result.kind === "error") throw result.error;
    const violations = result.error.violations.map((v) => ({
      field: pathToString(v.field) || call.method.input.name,
      description: v.message,
      reason: v.ruleId,
    }));
    const first = violations[0]!;
    throw serviceError(
      call.service,
      Code.InvalidArgument,
      "VALIDATION_FAILED",
      `invalid ${first.field}: ${first.description}`,
      { field: first.field, rule: first.reason },
      [{ desc: BadRequestSchema, value: { fieldViolations: violations } }],
    );
  };
}
