// Calls the service from Node.js with @connectrpc/connect-node, over the
// Connect protocol on the HTTP port: creates a user, finds them by email,
// reads them masked and in full, rotates the data key, and handles a refusal
// by its reason (scenario.ts). Settings come from the environment:
//
//   API_URL    the HTTP port's URL (default http://localhost:8000)
//   API_TOKEN  a bearer token with the scopes users.read, users.write,
//              pii.read and kms.admin (unset: no token, for a server with
//              authentication off)
//
// It exits 1, saying why, when the service answers anything unexpected.
import { createConnectTransport } from "@connectrpc/connect-node";
import { bearer, describe, runScenario } from "./scenario.js";

const token = process.env.API_TOKEN;
if (!token) console.log("API_TOKEN is not set: calling without a token");

const transport = createConnectTransport({
  baseUrl: process.env.API_URL ?? "http://localhost:8000",
  // HTTP/2 without TLS (h2c), as the development server listens. For gRPC on
  // port 9000 instead: createGrpcTransport from the same package.
  httpVersion: "2",
  interceptors: token ? [bearer(token)] : [],
});

try {
  await runScenario(transport, "ts", (line) => console.log(line));
} catch (err) {
  console.error(`error: ${describe(err)}`);
  process.exitCode = 1;
}
