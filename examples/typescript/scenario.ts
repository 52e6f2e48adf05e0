// The scenario both TypeScript examples run, the Node.js script (users.ts)
// and the web page (web/page.ts): only their transports differ, and the
// clients are made the same way from either.
import {
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import { UserService, View } from "../../api/user/v1/user_pb.js";
import { ErrorInfoSchema } from "../../third_party/google/rpc/error_details_pb.js";

/** Sends `authorization: Bearer <token>` with every call. */
export function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/** A failure's code and reason (its google.rpc.ErrorInfo's) beside its message. */
export function describe(err: unknown): string {
  if (!(err instanceof ConnectError)) return err instanceof Error ? err.message : String(err);
  const reason = err.findDetails(ErrorInfoSchema)[0]?.reason ?? "";
  return `${Code[err.code]}, reason ${reason}: ${err.rawMessage}`;
}

/**
 * Creates a user (named `prefix` and random hex), finds them by email, reads
 * them masked and in full, rotates the data key, and has a refusal handled by
 * its reason, calling `print` with each step. Throws on anything unexpected.
 */
export async function runScenario(
  transport: Transport,
  prefix: string,
  print: (line: string) => void,
): Promise<void> {
  const users = createClient(UserService, transport);
  const kms = createClient(KmsService, transport);
  // One deadline per call: without one a call to a stuck server waits forever.
  const call = { timeoutMs: 10_000 };

  // A new user each run, so the example can run again on the same server.
  const username = `${prefix}_${randomHex(4)}`;
  const email = `${username}@example.com`;
  const created = await users.createUser(
    // A real client takes the password from the person.
    { username, password: `Pw1-${randomHex(12)}`, email, name: "Ada Lovelace" },
    call,
  );
  const id = created.user!.id;
  print(`created user ${id} ${username}`);

  const found = await users.lookupUser({ key: { case: "email", value: email } }, call);
  if (found.user?.id !== id)
    throw new Error(`LookupUser by email found user ${found.user?.id}, not ${id}`);
  print(`found by email: user ${id}`);

  // Masked is for screens and logs; full needs the pii.read scope, and
  // without it the service answers masked whatever view is asked for.
  const masked = await users.getUser({ id, view: View.MASKED }, call);
  print(`masked: email ${masked.user?.email}, name ${masked.user?.name}`);
  const full = await users.getUser({ id, view: View.FULL }, call);
  if (full.user?.email !== email)
    throw new Error(
      `the full read came back as "${full.user?.email}": does the token have pii.read?`,
    );
  print(`full: email ${full.user.email}, name ${full.user.name}`);

  const rotated = await kms.rotateDataKey({ reason: `examples/typescript (${prefix})` }, call);
  print(`rotated the data key: version ${rotated.key?.version} (was ${rotated.previousVersion})`);

  // The email is taken now. A client branches on the ErrorInfo reason,
  // which is stable, never on the message, which is for people.
  try {
    await users.createUser(
      { username: `${username}_2`, password: `Pw1-${randomHex(12)}`, email },
      call,
    );
  } catch (err) {
    // Connect sends the details with the error; findDetails decodes them.
    const e = ConnectError.from(err);
    const info = e.findDetails(ErrorInfoSchema)[0];
    if (info?.reason !== "USER_ALREADY_EXISTS") throw e;
    const field = info.metadata.field;
    print(`the same email again: ${Code[e.code]}, reason ${info.reason} (field ${field}): handled`);
    return;
  }
  throw new Error("CreateUser with a taken email succeeded");
}

function randomHex(bytes: number): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
