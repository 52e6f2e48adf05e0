import { readFileSync } from "node:fs";

/** A secret file that cannot be used; the message names the file, never its content. */
export class SecretFileError extends Error {
  override name = "SecretFileError";
}

/**
 * The one rule for every secret file (`--token-file`, `kms.root_key_file`,
 * `auth.jwt.hs256_secret_file`): the secret is the file's bytes less one
 * final line ending (`\n` or `\r\n`), the one editors and `echo` leave.
 * Nothing else is trimmed, so what a file holds is never quietly turned into
 * a different secret; an empty result is refused.
 *
 * `where` names the setting in errors (e.g. "auth.jwt.hs256_secret_file").
 */
export function readSecretFile(where: string, path: string): Buffer {
  const secret = withoutFinalLineEnding(readBytes(where, path));
  if (secret.length === 0) throw new SecretFileError(`${where}: ${path} is empty`);
  return secret;
}

/** The file's bytes as they are (a raw 32-byte key may end in a newline byte). */
export function readBytes(where: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new SecretFileError(
      `${where}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? "error"}`,
    );
  }
}

/** The rule itself, for a file already read. */
export function withoutFinalLineEnding(bytes: Buffer): Buffer {
  if (bytes.at(-1) !== 0x0a) return bytes;
  return bytes.subarray(0, bytes.at(-2) === 0x0d ? -2 : -1);
}
