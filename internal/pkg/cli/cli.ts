import { CommanderError, type Command } from "commander";

// What the three command-line tools (server, migrate, kms) share on top of
// commander: Kratos' Go-style `-conf FILE`, refusing what would otherwise be
// silently merged (an option given twice), and every usage problem reported
// one way, as exit 2. commander loads in a few milliseconds, which deploy
// scripts calling `migrate` many times notice.

/**
 * Every long option the program or any of its commands declares, without
 * `--`, and whether it takes a value (help included, which commander keeps
 * apart).
 */
function longOptions(program: Command): Map<string, boolean> {
  const names = new Map<string, boolean>([["help", false]]);
  const walk = (c: Command) => {
    for (const o of c.options)
      if (o.long) names.set(o.long.replace(/^--(no-)?/, ""), o.required || o.optional);
    c.commands.forEach(walk);
  };
  walk(program);
  return names;
}

/**
 * The command line as commander reads it: a single-dash long option the
 * program declares (`-conf`, Go's flag style, as Kratos documents it)
 * becomes its double-dash form, unless it is the value of the option
 * before it (`--operator -conf`). Anything else is left as written.
 */
export function goStyle(program: Command, argv: readonly string[]): string[] {
  const names = longOptions(program);
  const end = argv.indexOf("--");
  const takesValue = (a: string) => {
    const m = /^--?([A-Za-z][\w-]*)$/.exec(a);
    return m !== null && names.get(m[1]!) === true;
  };
  let value = false;
  return argv.map((a, i) => {
    // The value of the option before it, whatever it looks like.
    if (value || (end >= 0 && i > end)) {
      value = false;
      return a;
    }
    value = takesValue(a);
    const m = /^-([A-Za-z][\w-]+)(=.*)?$/.exec(a);
    return m && names.has(m[1]!.replace(/^no-/, "")) ? `-${a}` : a;
  });
}

/**
 * The first long option written more than once in `argv` (before any `--`),
 * kebab-case, `--no-x` counted as `x`; commander would keep the last. Options
 * named in `repeatable` (which collect every value given) are not counted.
 */
export function repeatedOption(
  argv: readonly string[],
  repeatable: readonly string[] = [],
): string | undefined {
  const end = argv.indexOf("--");
  const seen = new Set<string>();
  for (const a of end < 0 ? argv : argv.slice(0, end)) {
    const m = /^--?([A-Za-z][\w-]*)(?:=|$)/.exec(a);
    if (!m) continue;
    const name = m[1]!
      .replace(/([a-z0-9])([A-Z])/g, "$1-$2")
      .toLowerCase()
      .replace(/^no-/, "");
    if (repeatable.includes(name)) continue;
    if (seen.has(name)) return name;
    seen.add(name);
  }
  return undefined;
}

/** A command's options and its parents', keyed by their flags' kebab-case names. */
export function flags(cmd: Command): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(cmd.optsWithGlobals()).map(([k, v]) => [
      k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`),
      v,
    ]),
  );
}

/**
 * Runs `program` on `argv` (user arguments, `-conf` style allowed). A usage
 * problem (unknown option or command, a missing or extra argument, a value
 * not among the choices, an option given twice, no command) goes to
 * `usage` with commander's words; `--help` prints and exits 0. A command's
 * own failure is rethrown for the caller to map to its exit code. Options in
 * `repeatable` may be given more than once (their parser collects them).
 */
export async function runCli(
  program: Command,
  argv: readonly string[],
  usage: (message: string) => never,
  { repeatable = [] }: { repeatable?: readonly string[] } = {},
): Promise<void> {
  const twice = repeatedOption(argv, repeatable);
  if (twice !== undefined) usage(`--${twice} given more than once: give it once`);
  const quiet = (c: Command) => {
    // Our own words go out through `usage`; help text still prints.
    c.exitOverride((err) => {
      // commander counts extra arguments (those after `--` too) but does not name them.
      if (err.code === "commander.excessArguments")
        err.message = `${err.message.replace(/\.$/, "")}: ${c.args.slice(c.registeredArguments.length).join(" ")}`;
      throw err;
    }).configureOutput({ outputError: () => undefined });
    c.commands.forEach(quiet);
  };
  quiet(program);
  try {
    await program.parseAsync(goStyle(program, argv), { from: "user" });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    if (err.exitCode === 0) process.exit(0); // --help, or `help [command]`
    // A program or group called without its command prints its help first.
    if (err.code === "commander.help") usage(`name a command: ${commandNames(program, argv)}`);
    usage(withoutValues(err.message));
  }
}

/**
 * commander's words on one line (its "(Did you mean …?)" has a line of its
 * own), without what an unknown option was given (`--token=…`) and without a
 * URL's credentials in an argument too many: a secret passed by mistake
 * stays out of the deploy log.
 */
function withoutValues(message: string): string {
  return message
    .replace(/^error: /, "")
    .replace(/\s*\n\s*/g, " ")
    .replace(/(unknown option '[^'=]+)=[^']*'/, "$1=…'")
    .replace(/(\/\/)[^/@\s]*@/g, "$1…@");
}

/** The commands the last group named in `argv` offers. */
function commandNames(program: Command, argv: readonly string[]): string {
  let group = program;
  for (const a of argv) {
    const next = group.commands.find((c) => c.name() === a);
    if (!next) break;
    group = next;
  }
  const names = group.commands.map((c) => c.name()).filter((n) => n !== "help");
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
}
