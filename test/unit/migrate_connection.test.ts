import { describe, expect, it } from "vitest";
import { DatabaseStalledError, isConnectionLost } from "../../internal/migrate/connect.js";

const withCode = (code: string, message = "x") => Object.assign(new Error(message), { code });

describe("a failure during a migration", () => {
  it.each([
    ["a stall", new DatabaseStalledError("stopped answering")],
    ["the socket reset", withCode("ECONNRESET")],
    // Five capitals, as a SQLSTATE has: it was once taken for one.
    ["a write to a closed socket", withCode("EPIPE")],
    ["node-postgres seeing the connection end", new Error("Connection terminated unexpectedly")],
    ["the server ending the session", withCode("57P01")],
    ["a connection failure class", withCode("08006")],
  ])("is a lost connection (outcome unknown) when it is %s", (_what, err) => {
    expect(isConnectionLost(err)).toBe(true);
  });

  it.each([
    ["a statement's SQLSTATE", withCode("42P07", 'relation "t" already exists')],
    ["a lock timeout", withCode("55P03")],
    ["an error of ours, with no code", new TypeError("cannot read properties of undefined")],
  ])("is not a lost connection when it is %s", (_what, err) => {
    expect(isConnectionLost(err)).toBe(false);
  });
});
