import { rpcErrors } from "./errors.js";
import type { Request, Response } from "./http_routes.js";
import { writeRpcError } from "./rpc_error_response.js";

// `/package.Service/Method`
const RPC_PATH = /^\/([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)\.[A-Za-z_]\w*\/[A-Za-z_]\w*$/;

/**
 * Answers a call to a method we do not serve as the gRPC port does
 * (UNIMPLEMENTED, with an ErrorInfo), in the caller's protocol. Returns false for
 * anything that is not such a call. The path is not echoed.
 */
export function answerUnknownMethod(
  req: Request,
  res: Response,
  path: string,
  packages: ReadonlySet<string>,
): boolean {
  if (req.method !== "POST" || !RPC_PATH.test(path)) return false;
  writeRpcError(req, res, unknownMethodError(path, packages));
  return true;
}

/** UNIMPLEMENTED for a method we do not serve; its domain the package, when it is one of ours. */
export function unknownMethodError(path: string, packages: ReadonlySet<string>) {
  const pkg = RPC_PATH.exec(path)?.[1];
  return rpcErrors.unknownMethod(pkg !== undefined && packages.has(pkg) ? pkg : "");
}
