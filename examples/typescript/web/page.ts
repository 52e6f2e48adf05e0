// The web page's script, bundled by esbuild into page.js: the scenario with
// @connectrpc/connect-web, over the Connect protocol from the browser (the
// server must allow this page's origin: server.http.cors_allowed_origins).
import { createConnectTransport } from "@connectrpc/connect-web";
import { bearer, describe, runScenario } from "../scenario.js";

const form = document.querySelector<HTMLFormElement>("#scenario")!;
const output = document.querySelector<HTMLPreElement>("#output")!;

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const fields = new FormData(form);
  const token = String(fields.get("token") ?? "");
  // createGrpcWebTransport from the same package speaks gRPC-Web instead.
  const transport = createConnectTransport({
    baseUrl: String(fields.get("url")),
    interceptors: token ? [bearer(token)] : [],
  });
  output.textContent = "";
  const print = (line: string) => (output.textContent += `${line}\n`);
  try {
    await runScenario(transport, "web", print);
    output.dataset.result = "done";
  } catch (err) {
    print(`error: ${describe(err)}`);
    output.dataset.result = "failed";
  }
});
