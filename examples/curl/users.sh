#!/usr/bin/env bash
# The scenario of examples/README.md over the REST routes (the protos'
# google.api.http annotations, served on port 8000), with curl and jq, as a
# runbook or a deploy script would call the service.
#
#   API_URL=http://localhost:8000 API_TOKEN=… ./users.sh
set -euo pipefail

API_URL=${API_URL:-http://localhost:8000}
auth=()
if [ -n "${API_TOKEN:-}" ]; then
  auth=(-H "authorization: Bearer $API_TOKEN")
else
  echo "API_TOKEN is not set: calling without a token"
fi

fail() {
  echo "error: $*" >&2
  exit 1
}

# call METHOD PATH [JSON]: sets $status (HTTP) and $body (the JSON answer).
call() {
  local args=(-sS -X "$1" -H 'content-type: application/json' -w '\n%{http_code}' "${auth[@]}")
  if [ $# -ge 3 ]; then args+=(--data "$3"); fi
  local answer
  answer=$(curl "${args[@]}" "$API_URL$2") || fail "$1 $2: curl failed"
  status=${answer##*$'\n'}
  body=${answer%$'\n'*}
}

# A failure is Connect's error JSON: code, message, and details, of which the
# google.rpc.ErrorInfo carries the reason to branch on (its `debug` is the
# detail as JSON; `value` the same in protobuf).
ok() {
  [ "$status" = 200 ] || fail "$1: HTTP $status: $(jq -r '.code + ": " + .message' <<<"$body")"
}
detail() { jq -r --arg k "$1" '[.details[]? | select(.type == "google.rpc.ErrorInfo") | .debug | getpath($k | split("."))][0] // ""' <<<"$body"; }

username="curl_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
email="$username@example.com"
new_user() { jq -n --arg u "$1" --arg e "$email" '{username: $u, password: "correct-horse-9", email: $e, name: "Ada Lovelace"}'; }

call POST /v1/users "$(new_user "$username")"
ok "create"
id=$(jq -r .user.id <<<"$body")
echo "created user $id $username"

# A lookup by email is a POST: a value in a URL ends up in access logs.
call POST /v1/users:lookup "$(jq -n --arg e "$email" '{email: $e}')"
ok "lookup"
[ "$(jq -r .user.id <<<"$body")" = "$id" ] || fail "the lookup found another user"
echo "found by email: user $id"

call GET "/v1/users/$id?view=VIEW_MASKED"
ok "masked read"
echo "masked: email $(jq -r .user.email <<<"$body"), name $(jq -r .user.name <<<"$body")"

call GET "/v1/users/$id?view=VIEW_FULL"
ok "full read"
full=$(jq -r .user.email <<<"$body")
[ "$full" = "$email" ] || fail "the full read came back masked ($full): does the token have pii.read?"
echo "full: email $full, name $(jq -r .user.name <<<"$body")"

call POST /v1/kms/keys:rotate '{"reason": "examples/curl"}'
ok "rotate"
echo "rotated the data key: version $(jq -r .key.version <<<"$body") (was $(jq -r .previousVersion <<<"$body"))"

call POST /v1/users "$(new_user "${username}_2")"
reason=$(detail reason)
[ "$status" = 409 ] && [ "$reason" = USER_ALREADY_EXISTS ] ||
  fail "the same email again: expected USER_ALREADY_EXISTS, got HTTP $status ${reason:-without a reason}"
echo "the same email again: $(jq -r '.code | ascii_upcase' <<<"$body"), reason $reason (field $(detail metadata.field)): handled"
