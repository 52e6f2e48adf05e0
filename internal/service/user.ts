import { UserService } from "../../api/user/v1/user_pb.js";
import { bind, type ServiceBinding } from "../pkg/rpc/call.js";

/**
 * user.v1.UserService: translates messages to the user use cases. No method
 * is served yet (the UserService issue brings them); each answers UNIMPLEMENTED.
 */
export function newUserService(): ServiceBinding {
  return bind(UserService, {});
}
