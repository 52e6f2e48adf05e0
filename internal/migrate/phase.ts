import { markerLines } from "./lint/marker.js";

// A migration's phase, declared in its up file by a comment line, so the
// file stays plain SQL that psql or golang-migrate can run:
//   -- migrate:phase expand
//   -- migrate:phase contract 20261207120000   (the expand it completes)
// Expand files must keep the previous release working (lint checks it);
// contracts remove what only the previous release needed and run once no
// instance of it is alive. Unmarked files behave as they always did.

export type Phase = { kind: "expand" } | { kind: "contract"; expands: bigint };

/**
 * The phase `up` (the text of `path`) declares, undefined when unmarked; a
 * malformed line is returned as the problem, naming file, line and the fix.
 */
export function readPhase(up: string, path: string): Phase | { problem: string } | undefined {
  const lines = markerLines(up, "phase");
  if (lines.length === 0) return undefined;
  if (lines.length > 1) {
    const at = lines.map((l) => l.index + 1).join(" and ");
    return { problem: `${path}: -- migrate:phase appears twice (lines ${at}): keep one` };
  }
  const { index, rest } = lines[0]!;
  const where = `${path}:${index + 1}`;
  const words = rest.trim().split(/\s+/).filter(Boolean);
  if (words[0]) words[0] = words[0].toLowerCase();
  if (words[0] === "expand" && words.length === 1) return { kind: "expand" };
  if (words[0] === "contract" && words.length === 2 && /^[0-9]{1,19}$/.test(words[1]!))
    return { kind: "contract", expands: BigInt(words[1]!) };
  if (words[0] === "contract")
    return {
      problem: `${where}: -- migrate:phase contract needs the version of the expand it completes: -- migrate:phase contract VERSION`,
    };
  return {
    problem: `${where}: -- migrate:phase ${JSON.stringify(words.join(" ")).slice(1, -1).slice(0, 40)}: expected "expand" or "contract VERSION"`,
  };
}

/** The phase's name as status and events show it: expand, contract, or undefined. */
export const phaseName = (p: Phase | undefined): "expand" | "contract" | undefined => p?.kind;
