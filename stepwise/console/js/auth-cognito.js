// The sign-in of the AWS deployment (config "auth": "cognito"): a Cognito user pool's hosted login
// with the authorization-code + PKCE flow. This module is the hook the AWS deployment fills in;
// js/auth.js calls init(config), currentUser(), authorizationHeader() and signOut().
// Until it is wired, the console signs nothing and says so.

export async function init() {}

export function currentUser() {
  return "";
}

export function authorizationHeader() {
  return "";
}

export function signOut() {}
