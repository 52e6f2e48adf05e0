import { getOption, hasOption, type DescField } from "@bufbuild/protobuf";
import {
  field as fieldRules,
  Ignore,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import type { Schema } from "./schemas.js";

// The buf.validate rules that JSON Schema says as plainly: string lengths
// and patterns, bounds of numbers whose JSON is a number, and `required`.
// CEL expressions, 64-bit bounds (their JSON is a string), bytes lengths
// (counted before base64) and the rest stay in the proto.

export interface FieldRules {
  /** Keywords for the field's value schema. */
  keywords: Schema;
  /** (buf.validate.field).required. */
  required: boolean;
}

const NONE: FieldRules = { keywords: {}, required: false };

export function rulesOf(field: DescField): FieldRules {
  if (!hasOption(field, fieldRules)) return NONE;
  const rules = getOption(field, fieldRules);
  if (rules.ignore === Ignore.ALWAYS) return NONE;
  // The empty value passes whatever the rules say.
  const zeroAllowed = rules.ignore === Ignore.IF_ZERO_VALUE;
  const keywords: Schema = {};
  const t = rules.type;
  switch (t.case) {
    case "string": {
      const s = t.value;
      const min = s.len > 0n ? s.len : s.minLen;
      const max = s.len > 0n ? s.len : s.maxLen;
      if (min > 0n && !zeroAllowed) keywords.minLength = Number(min);
      if (max > 0n) keywords.maxLength = Number(max);
      if (s.pattern !== "") keywords.pattern = zeroAllowed ? `^$|(?:${s.pattern})` : s.pattern;
      break;
    }
    case "int32":
    case "uint32":
    case "sint32":
    case "fixed32":
    case "sfixed32":
    case "float":
    case "double": {
      if (zeroAllowed) break;
      const { greaterThan: gt, lessThan: lt } = t.value;
      // OpenAPI 3.0: a bound, and whether it is excluded.
      if (gt.case !== undefined) keywords.minimum = gt.value;
      if (gt.case === "gt") keywords.exclusiveMinimum = true;
      if (lt.case !== undefined) keywords.maximum = lt.value;
      if (lt.case === "lt") keywords.exclusiveMaximum = true;
      break;
    }
  }
  return { keywords, required: rules.required };
}
