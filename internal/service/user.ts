import { file_user_v1_error_reason } from "../../api/user/v1/error_reason_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { UserSchema } from "../../api/user/v1/user_pb.js";
import { UserService, View } from "../../api/user/v1/user_pb.js";
import { reasonName } from "../biz/errors.js";
import type { User } from "../biz/user.js";
import type { UserUsecase, View as BizView } from "../biz/user_usecase.js";
import { bind, type ServiceBinding } from "../transport/binding.js";
import type { Call } from "../transport/call.js";

/** user.v1.UserService: translates messages to the user use cases, nothing else. */
export function newUserService(users: UserUsecase): ServiceBinding {
  return bind(
    UserService,
    {
      async createUser(req, call) {
        return { user: toProto(await users.create(req, call)) };
      },
      async getUser(req, call) {
        return { user: toProto(await users.get(req.id, view(req.view, call))) };
      },
      async lookupUser(req, call) {
        const by = { [req.key.case!]: req.key.value as string };
        return { user: toProto(await users.lookup(by, view(req.view, call))) };
      },
      async listUsers(req, call) {
        const page = await users.list(req, view(req.view, call));
        return {
          users: page.users.map(toProto),
          nextPageToken: page.nextPageToken,
          unreadable: page.unreadable.map(({ id, error }) => ({
            id: BigInt(id),
            code: error.code,
            reason: reasonName(error.reason).reason,
            message: error.message,
          })),
        };
      },
      async updateUser(req, call) {
        const change = { ...req, paths: req.updateMask?.paths ?? [] };
        return { user: toProto(await users.update(req.id, change, view(req.view, call), call)) };
      },
      async deleteUser(req, call) {
        await users.delete(req.id, call);
        return {};
      },
      async verifyPassword(req, call) {
        return { userId: BigInt(await users.verifyPassword(req.login, req.password, call)) };
      },
    },
    [file_user_v1_error_reason],
  );
}

// Plaintext only for callers allowed to see it: without pii.read every
// read is masked, whatever view was asked for.
const view = (v: View, call: Call): BizView =>
  v !== View.MASKED && call.caller?.scopes.has("pii.read") ? "full" : "masked";

function toProto(u: User): MessageInitShape<typeof UserSchema> {
  return {
    id: BigInt(u.id),
    username: u.username,
    email: u.email,
    phone: u.phone,
    name: u.name,
    createdAt: timestampFromDate(u.createdAt),
    updatedAt: timestampFromDate(u.updatedAt),
  };
}
