import { readFileSync } from "node:fs";
import { createSecureContext, type SecureContextOptions, type Server } from "node:tls";
import type { Tls } from "../conf/conf_pb.js";

/** What a port needs to speak TLS, reloaded in place for new connections. */
export interface TlsConfig {
  /** Clients must present a certificate signed by client_ca_file. */
  readonly mutual: boolean;
  /** Serves the current certificate on `server`, and later ones after reload. */
  attach(server: Server): SecureContextOptions;
  /** Re-reads the files; on failure keeps serving with the previous ones and throws. */
  reload(): void;
}

/** TLS from the configured files, or undefined when none are set. */
export function tlsConfig(conf: Tls | undefined): TlsConfig | undefined {
  if (!conf?.certFile) return undefined;
  const load = (): SecureContextOptions => {
    try {
      const options = {
        cert: readFileSync(conf.certFile),
        key: readFileSync(conf.keyFile),
        ca: conf.clientCaFile ? readFileSync(conf.clientCaFile) : undefined,
        minVersion: "TLSv1.2" as const,
      };
      createSecureContext(options); // refuse a bad pair before any server sees it
      return options;
    } catch (err) {
      // Name the setting, never the key material OpenSSL may quote.
      const code = (err as NodeJS.ErrnoException).code ?? "invalid PEM";
      throw new Error(`server.tls: cannot load cert_file/key_file/client_ca_file: ${code}`);
    }
  };
  let current = load();
  const servers = new Set<Server>();
  return {
    mutual: conf.clientCaFile !== "",
    attach: (server) => {
      servers.add(server);
      server.once("close", () => servers.delete(server));
      return current;
    },
    reload: () => {
      current = load();
      for (const server of servers) server.setSecureContext(current);
    },
  };
}
