// What yargs would otherwise drop or merge without a word: an option given
// twice (yargs makes an array of a string option, which later reads as a
// bad value, and keeps one of a repeated flag) and arguments after `--`.

/** The long option names written in `argv` (before any `--`), kebab-case, `--no-x` as `x`. */
function optionNames(argv: readonly string[]): string[] {
  const end = argv.indexOf("--");
  return (end < 0 ? argv : argv.slice(0, end)).flatMap((a) => {
    const m = /^--?([A-Za-z][\w-]*)(?:=|$)/.exec(a);
    if (!m) return [];
    const name = m[1]!.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase();
    return [name.replace(/^no-/, "")];
  });
}

/**
 * A yargs `check` refusing a command line the tool would misread: an option
 * given more than once, or anything after `--` (needs `populate--`).
 */
export const refuseAmbiguous =
  (argv: readonly string[]) =>
  (args: { [name: string]: unknown }): true => {
    const seen = new Set<string>();
    for (const name of optionNames(argv)) {
      if (seen.has(name)) throw new Error(`--${name} given more than once: give it once`);
      seen.add(name);
    }
    const rest = (args["--"] as unknown[] | undefined) ?? [];
    if (rest.length > 0)
      throw new Error(`unexpected arguments after --: ${rest.join(" ")} (this command takes none)`);
    return true;
  };
