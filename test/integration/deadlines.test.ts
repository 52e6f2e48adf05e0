import { connect as http2Connect, constants } from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { CreateUserRequestSchema } from "../../api/user/v1/user_pb.js";
import { useTestApp } from "../helpers/app.js";
import { query } from "../helpers/catalog.js";

// Twenty creates at once from one caller: more than a caller's default share
// of the password hashes, which this test is not about.
const ctx = useTestApp({ config: { limits: { password_hashes_per_caller: 32 } } });

/**
 * CreateUser over raw HTTP/2 with a grpc-timeout header, so the request
 * reaches the server however short the deadline (a grpc-js client gives up
 * locally first). Resolves with the grpc-status.
 */
function createUser(port: number, username: string, timeout: string): Promise<string> {
  const message = toBinary(
    CreateUserRequestSchema,
    create(CreateUserRequestSchema, {
      username,
      password: "passw0rd-long",
      email: `${username}@example.com`,
    }),
  );
  const body = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);
  const session = http2Connect(`http://127.0.0.1:${port}`);
  return new Promise((resolve, reject) => {
    const stream = session.request({
      [constants.HTTP2_HEADER_METHOD]: "POST",
      [constants.HTTP2_HEADER_PATH]: "/user.v1.UserService/CreateUser",
      "content-type": "application/grpc",
      "grpc-timeout": timeout,
      te: "trailers",
    });
    let status = "";
    stream.on("response", (h) => (status = String(h["grpc-status"] ?? status)));
    stream.on("trailers", (t) => (status = String(t["grpc-status"] ?? status)));
    stream.on("error", reject);
    stream.on("end", () => {
      session.close();
      resolve(status);
    });
    stream.resume();
    stream.end(body);
  });
}

const exists = async (username: string) =>
  (await query(ctx.db.url, "SELECT 1 FROM users WHERE username = $1", [username])).length > 0;

describe("DEADLINE_EXCEEDED means not written", () => {
  it("a create whose deadline passes before it commits writes nothing; one that commits answers OK", async () => {
    // gRPC on port 8000 (h2c): port 9000's grpc-js answers a client deadline
    // by itself, whatever the handler is doing (see docs/api.md#deadlines).
    const port = ctx.app.httpPort;
    // 1 ms: expired long before the password hash is done.
    const expired = Array.from({ length: 8 }, (_, i) => `late_${i}`);
    const statuses = await Promise.all(expired.map((u) => createUser(port, u, "1m")));
    expect(statuses).toEqual(expired.map(() => "4"));
    // Deadlines around the time a create takes: either answer, never a lie.
    const racing = Array.from({ length: 12 }, (_, i) => `race_${i}`);
    const raced = await Promise.all(racing.map((u, i) => createUser(port, u, `${40 + i * 20}m`)));
    // A create queued after all of them: once it is done, they are too.
    expect(await createUser(port, "sentinel", "30S")).toBe("0");
    for (const u of expired) expect(await exists(u), u).toBe(false);
    for (const [i, u] of racing.entries()) {
      expect(["0", "4"]).toContain(raced[i]);
      expect(await exists(u), `${u} answered ${raced[i]}`).toBe(raced[i] === "0");
    }
  });
});
