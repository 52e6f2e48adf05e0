/**
 * A refused `migrate create --expand` request (an option missing, misplaced
 * or malformed): the message names the option; nothing was written.
 */
export class ExpandOptionError extends Error {
  override name = "ExpandOptionError";
}
