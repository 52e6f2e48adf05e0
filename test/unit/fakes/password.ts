// pkg/password/scrypt at no cost: a password "hashes" to itself. scrypt at
// its real cost is the integration tests' and the bench's; specs replace it
// with `vi.mock(".../scrypt.js", () => import("./fakes/password.js"))`.

export const hashPassword = async (p: string) => `plain:${p}`;
export const verifyPassword = async (p: string, stored: string) => stored === `plain:${p}`;
export const decoyHash = async () => "decoy";
