import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import { UserService } from "../../api/user/v1/user_pb.js";
import type { Route } from "../../internal/server/handlers.js";
import { restBindings } from "../../internal/server/rest/bindings.js";

// docs/api.md's table of REST routes is the protos' annotations, no more, no less.
it("docs/api.md lists every google.api.http route with its RPC, and nothing else", () => {
  const routes = [UserService, KmsService].flatMap((service) =>
    service.methods.map((method) => ({ service, method }) as unknown as Route),
  );
  const declared = restBindings(routes).map(
    (b) =>
      `${b.httpMethod} ${b.template.text} ${b.route.method.parent.name}.${b.route.method.name} ${b.body === "" ? "none" : "the request"}`,
  );
  const table = [
    ...readFileSync("docs/api.md", "utf8").matchAll(
      /^\| `([A-Z]+ \/\S+)` +\| `(\w+\.\w+)` *\| ([a-z ]+?) +\|$/gm,
    ),
  ].map((m) => `${m[1]} ${m[2]} ${m[3]}`);
  expect(table.sort()).toEqual(declared.sort());
});
