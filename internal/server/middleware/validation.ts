import { hasOption, type DescMessage } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { createValidator } from "@bufbuild/protovalidate";
import {
  field as fieldRules,
  message as messageRules,
  oneof as oneofRules,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { regexMatcher } from "../../pkg/regex/matcher.js";
import type { Guard } from "../../transport/middleware.js";
import { rpcErrors } from "../errors.js";
import { nulField } from "./text.js";

/**
 * Checks each request against the buf.validate rules in its proto. A
 * violation is INVALID_ARGUMENT naming the field (ErrorInfo metadata "field",
 * all violations in a google.rpc.BadRequest); the value is never echoed.
 * A string holding NUL is refused the same way, whatever the field. A
 * request its transport refused never reaches the handler.
 *
 * protovalidate plans each message type once and keeps the plan; what is
 * left per call is its walk, which a type without any rule skips here.
 * Patterns run on V8's RegExp where it answers as RE2 does (regexMatcher).
 */
export function validation(): Guard {
  const validator = createValidator({ regexMatch: regexMatcher() });
  const ruled = new WeakMap<DescMessage, boolean>();
  return (call) => {
    if (call.refused) throw call.refused;
    const input = call.method.input;
    const nul = nulField(input, call.request);
    if (nul !== undefined) {
      throw rpcErrors.invalidField(call.service, nul, "string.no_nul", "contains a NUL character");
    }
    let checked = ruled.get(input);
    if (checked === undefined) {
      checked = hasRules(input, new Set());
      ruled.set(input, checked);
    }
    if (!checked) return;
    const result = validator.validate(input, call.request);
    if (result.kind === "valid") return;
    if (result.kind === "error") throw result.error;
    const violations = result.error.violations.map((v) => ({
      field: pathToString(v.field) || input.name,
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

/** Whether `desc`, or a message type it holds, carries any buf.validate option. */
export function hasRules(desc: DescMessage, seen: Set<DescMessage>): boolean {
  if (seen.has(desc)) return false;
  seen.add(desc);
  if (hasOption(desc, messageRules)) return true;
  if (desc.oneofs.some((o) => hasOption(o, oneofRules))) return true;
  return desc.fields.some(
    (f) => hasOption(f, fieldRules) || (f.message !== undefined && hasRules(f.message, seen)),
  );
}
