import { callOptions, client, type ConnectArgs } from "./connect.js";

export interface RootKeyArgs extends ConnectArgs {
  json?: boolean;
}

/**
 * Asks an instance holding both root keys to re-wrap every stored key under
 * the new one (KmsService.RotateRootKey). Safe to repeat: a second run says
 * there was nothing to do.
 */
export async function rotateRootKey(args: RootKeyArgs): Promise<void> {
  const r = await client(args).rotateRootKey({}, callOptions(args));
  const view = {
    rotated: r.rotated,
    rewrappedKeys: r.rewrappedKeys,
    rootKeyId: r.rootKeyId,
    previousRootKeyId: r.previousRootKeyId,
  };
  if (args.json) {
    process.stdout.write(`${JSON.stringify(view)}\n`);
    return;
  }
  process.stdout.write(
    r.rotated
      ? `re-wrapped ${r.rewrappedKeys} stored keys from root key ${r.previousRootKeyId} to ${r.rootKeyId}\n`
      : `the stored keys are already under root key ${r.rootKeyId}: nothing to do\n`,
  );
}
