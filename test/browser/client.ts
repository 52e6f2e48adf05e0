// Bundled by test/integration/browser.test.ts with esbuild and run in
// Chromium: what a web app does with @connectrpc/connect-web.
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { UserService } from "../../api/user/v1/user_pb.js";
import { ErrorInfoSchema } from "../../third_party/google/rpc/error_details_pb.js";

async function failure(p: Promise<unknown>) {
  try {
    await p;
    return { code: "OK", reason: "" };
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: Code[e.code], reason: e.findDetails(ErrorInfoSchema)[0]?.reason ?? "" };
  }
}

async function checks(transport: Transport, anonymous: Transport, username: string) {
  const users = createClient(UserService, transport);
  const created = await users.createUser({
    username,
    password: "passw0rd-long",
    email: `${username}@example.com`,
  });
  const read = await users.getUser({ id: created.user!.id });
  return {
    email: read.user?.email,
    missing: await failure(users.getUser({ id: 987654321n })),
    noToken: await failure(createClient(UserService, anonymous).getUser({ id: created.user!.id })),
  };
}

type RunChecks = (baseUrl: string, token: string) => Promise<unknown>;

// The test calls this from the page (tsconfig has no DOM types: globalThis).
(globalThis as unknown as { runChecks: RunChecks }).runChecks = async (baseUrl, token) => {
  const auth = (headers: Headers) => headers.set("authorization", `Bearer ${token}`);
  const withToken =
    (next: (req: { header: Headers }) => Promise<unknown>) => async (req: { header: Headers }) => {
      auth(req.header);
      return next(req);
    };
  const interceptors = [withToken as never];
  return {
    connect: await checks(
      createConnectTransport({ baseUrl, interceptors }),
      createConnectTransport({ baseUrl }),
      `web_connect_${Date.now() % 100000}`,
    ),
    grpcWeb: await checks(
      createGrpcWebTransport({ baseUrl, interceptors }),
      createGrpcWebTransport({ baseUrl }),
      `web_grpcweb_${Date.now() % 100000}`,
    ),
  };
};
