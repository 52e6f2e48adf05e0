import type { Context } from "./context.js";
import { hashPassword, verifyPassword, decoyHash } from "../pkg/password/scrypt.js";
import { maskEmail, maskName, maskPhone } from "../pkg/sensitive/mask.js";
import { normalise } from "../pkg/kms/blindindex.js";
import type { BizError } from "./errors.js";
import type { FieldCipher } from "./kms/field_cipher.js";
import { MAX_POSITION, paging } from "./paging.js";
import type { LoginAttempts, LoginPolicy } from "./login.js";
import { fairQueue, QueueFullError, type FairQueue } from "../pkg/limit/fair_queue.js";
import { openUserFields, sealUserField, underActiveKey, underIndexKeys } from "./user_fields.js";
import {
  DuplicateError,
  isUnreadableUser,
  PII_FIELDS,
  userErrors,
  type PiiField,
  type StoredField,
  type StoredUser,
  type User,
  type UserRepo,
} from "./user.js";

export type View = "full" | "masked";

export interface NewUser {
  username: string;
  password: string;
  email: string;
  phone: string;
  name: string;
}

export interface UserChange {
  /** Which of email, phone, name, password to change. */
  paths: string[];
  email: string;
  phone: string;
  name: string;
  password: string;
}

const noLoginLimit: LoginAttempts = {
  attempt: async () => 0,
  succeeded: async () => undefined,
};

/**
 * Users whose email, phone and name are stored only encrypted (bound to their
 * row and column) beside keyed blind indexes used for lookups and uniqueness.
 */
export class UserUsecase {
  private readonly logins: LoginAttempts;
  private readonly policy: LoginPolicy;
  private readonly hashing: FairQueue;

  constructor(
    private readonly repo: UserRepo,
    private readonly kms: FieldCipher,
    // Defaults for tools and tests; the service passes its configuration.
    opts: { logins?: LoginAttempts; policy?: LoginPolicy; hashing?: FairQueue } = {},
  ) {
    this.policy = opts.policy ?? { maxAttempts: 0, lockMs: 0 };
    this.logins = opts.logins ?? noLoginLimit;
    this.hashing = opts.hashing ?? fairQueue({ concurrency: 1, capacity: 64, perKey: 4 });
  }

  /**
   * Work around an scrypt, admitted per caller: one caller's excess is
   * refused at once, and waiting callers take turns, so a flood from one
   * leaves the others their share.
   */
  private hashed<T>(ctx: Context, work: () => Promise<T>): Promise<T> {
    return this.hashing.run(ctx.caller?.name ?? "", work).catch((err: unknown) => {
      throw err instanceof QueueFullError ? userErrors.busy() : err;
    });
  }

  async create(input: NewUser, ctx: Context): Promise<User> {
    // Hashed first: a refused call takes no id.
    const passwordHash = await this.hashed(ctx, () => hashPassword(input.password));
    const id = await this.repo.nextId();
    const stored = await underActiveKey(this.kms, async () => {
      const fields: Partial<Record<PiiField, StoredField>> = {};
      for (const f of PII_FIELDS) {
        const value = clean(f, input[f]);
        if (value) fields[f] = await sealUserField(this.kms, id, f, value);
      }
      return this.guardDuplicates(() =>
        this.repo.insert({ id, username: input.username, passwordHash, fields }, ctx),
      );
    });
    return this.open(stored, "full");
  }

  async get(userId: bigint, view: View): Promise<User> {
    const stored = await this.repo.byId(rowId(userId));
    if (!stored) throw userErrors.notFound();
    return this.open(stored, view);
  }

  async lookup(
    by: { username?: string; email?: string; phone?: string },
    view: View,
  ): Promise<User> {
    let stored: StoredUser | undefined;
    if (by.username !== undefined) stored = await this.repo.byUsername(by.username);
    else if (by.email !== undefined) stored = await this.byIndex("email", by.email);
    else if (by.phone !== undefined) stored = await this.byIndex("phone", by.phone);
    if (!stored) throw userErrors.notFound();
    return this.open(stored, view);
  }

  async list(opts: { pageSize: number; pageToken: string; name: string }, view: View) {
    const name = opts.name.trim() ? normalise("name", opts.name) : undefined;
    // Bound to the filter itself (the token shows nothing of it), so a token
    // outlives a rotation of the index key.
    const pages = paging(this.kms.pageTokens(), opts, `users:${name ?? ""}`);
    if (!pages) throw userErrors.invalidPageToken();
    const rows = await underIndexKeys(
      this.kms,
      name === undefined ? undefined : () => this.kms.indexes("name", name).hashes,
      (nameHashes) => this.repo.list({ limit: pages.fetch, afterId: pages.from ?? 0, nameHashes }),
    );
    const { page, nextPageToken } = pages.finish(rows, (r) => r.id);
    // One user that cannot be read (revoked key, corrupt data) is reported
    // beside the page, not instead of it; any other failure fails the call.
    const opened = await Promise.allSettled(page.map((r) => this.open(r, view)));
    const users: User[] = [];
    const unreadable: { id: number; error: BizError }[] = [];
    opened.forEach((r, i) => {
      if (r.status === "fulfilled") users.push(r.value);
      else if (isUnreadableUser(r.reason)) unreadable.push({ id: page[i]!.id, error: r.reason });
      else throw r.reason;
    });
    return { users, unreadable, nextPageToken };
  }

  async update(userId: bigint, change: UserChange, view: View, ctx: Context): Promise<User> {
    const id = rowId(userId);
    const known = new Set<string>([...PII_FIELDS, "password"]);
    const unknown = change.paths.find((p) => !known.has(p));
    // The path itself is not quoted: a careless client may send a value there.
    if (unknown !== undefined)
      throw userErrors.invalid("update_mask", `unknown path (allowed: ${[...known].join(", ")})`);
    if (change.paths.length === 0)
      throw userErrors.invalid("update_mask", "name at least one field");
    if (change.paths.includes("email") && !change.email.trim())
      throw userErrors.invalid("email", "is required");
    if (change.paths.includes("password") && !change.password)
      throw userErrors.invalid("password", "is required");
    if (!(await this.repo.byId(id))) throw userErrors.notFound();
    const passwordHash = change.paths.includes("password")
      ? await this.hashed(ctx, () => hashPassword(change.password))
      : undefined;
    const stored = await underActiveKey(this.kms, async () => {
      const fields: Partial<Record<PiiField, StoredField | null>> = {};
      for (const f of PII_FIELDS) {
        if (!change.paths.includes(f)) continue;
        const value = clean(f, change[f]);
        fields[f] = value ? await sealUserField(this.kms, id, f, value) : null;
      }
      return this.guardDuplicates(() => this.repo.update(id, { fields, passwordHash }, ctx));
    });
    if (!stored) throw userErrors.notFound();
    return this.open(stored, view);
  }

  async delete(userId: bigint, ctx: Context): Promise<void> {
    if (!(await this.repo.delete(rowId(userId), ctx))) throw userErrors.notFound();
  }

  /**
   * The user id for a login (username or email) and password; the same
   * answer, at the same cost, for an unknown login and a wrong password.
   */
  async verifyPassword(login: string, password: string, ctx: Context): Promise<number> {
    // Admitted before anything is read: a refused call costs nothing more.
    return this.hashed(ctx, async () => {
      // Failures counted per login as typed (normalised) and per caller,
      // never per account: a lock says nothing of which accounts exist or
      // which logins share one, and one caller's guesses lock only itself.
      const caller = ctx.caller?.name ?? "";
      const key = `login:${this.kms.hashField("login", JSON.stringify([caller, login.trim().toLowerCase()]))}`;
      if (this.policy.maxAttempts > 0) {
        const wait = await this.logins.attempt(key);
        if (wait > 0) throw userErrors.accountLocked(wait);
      }
      const stored = login.includes("@")
        ? await this.byIndex("email", login)
        : await this.repo.byUsername(login);
      const ok = await verifyPassword(password, stored?.passwordHash ?? (await decoyHash()));
      if (!stored || !ok) throw userErrors.invalidCredentials();
      if (this.policy.maxAttempts > 0) await this.logins.succeeded(key);
      return stored.id;
    });
  }

  private byIndex(field: "email" | "phone", value: string): Promise<StoredUser | undefined> {
    return underIndexKeys(
      this.kms,
      () => this.kms.indexes(field, value).hashes,
      (hashes) => this.repo.byHash(field, hashes!),
    );
  }

  private async guardDuplicates<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof DuplicateError) throw userErrors.alreadyExists(err.field);
      throw err;
    }
  }

  /** Decrypts a row; a field that fails fails the read of this user only. */
  private async open(stored: StoredUser, view: View): Promise<User> {
    const values = await openUserFields(this.kms, stored);
    const masked = view === "masked";
    return {
      id: stored.id,
      username: stored.username,
      email: masked ? maskEmail(values.email) : values.email,
      phone: masked ? maskPhone(values.phone) : values.phone,
      name: masked ? maskName(values.name) : values.name,
      createdAt: stored.createdAt,
      updatedAt: stored.updatedAt,
    };
  }
}

/** Values are stored as the user wrote them, trimmed (a phone reduced to E.164). */
function clean(field: PiiField, value: string): string {
  return field === "phone" ? normalise("phone", value) : value.trim();
}

/** Ids are the table's SERIAL (int4): anything larger names no user. */
function rowId(id: bigint): number {
  if (id < 1n || id > BigInt(MAX_POSITION)) throw userErrors.notFound();
  return Number(id);
}
