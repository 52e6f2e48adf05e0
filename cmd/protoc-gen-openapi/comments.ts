import type {
  DescEnum,
  DescEnumValue,
  DescField,
  DescMessage,
  DescMethod,
  DescService,
} from "@bufbuild/protobuf";
import { getComments } from "@bufbuild/protoplugin";

/**
 * The leading comment of a proto element as text: protoc keeps the space
 * after each `//`, which would indent every line in Markdown.
 */
export function commentOf(
  desc: DescService | DescMethod | DescMessage | DescField | DescEnum | DescEnumValue,
): string | undefined {
  const text = getComments(desc).leading;
  if (text === undefined) return undefined;
  const lines = text.split("\n").map((line) => line.replace(/^ /, "").trimEnd());
  const joined = lines.join("\n").trim();
  return joined === "" ? undefined : joined;
}

/** The first sentence of a comment, on one line: an operation's summary. */
export function firstSentence(text: string): string {
  const flat = text.split("\n\n")[0]!.replace(/\s*\n\s*/g, " ");
  const end = /\.(\s|$)/.exec(flat);
  return end ? flat.slice(0, end.index + 1) : flat;
}
