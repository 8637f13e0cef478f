// Who the console calls the API as.
//
// `authorizationHeader()` is the one hook every API call goes through: it returns the value of the
// Authorization header (or "" for none).
// - auth "local": the identity picked in the picker (clearly marked local). The local gateway names a
//   caller by the access key its SigV4 header names (Credential=LOCAL<name>/...; signatures are not
//   verified locally), so the picked name is the identity recorded for the call, four-eyes and
//   --strict-auth personas included.
// - auth "cognito": the AWS deployment's sign-in module (js/auth-cognito.js: the user pool's
//   managed login, authorization code + PKCE) provides the header (the user's access token).

const KEY = "stepwise.console.identity";
export const NAME_PATTERN = /^[A-Za-z0-9_.@\-]{1,64}$/;

let mode = "local";
let provider = null; // the cognito module, when auth is "cognito"
let failure = "";

export async function initAuth(config) {
  mode = config.auth === "cognito" ? "cognito" : "local";
  if (mode === "cognito") {
    provider = await import("./auth-cognito.js");
    try {
      await provider.init(config);
    } catch (err) {
      failure = err.message; // shown on the sign-in page
    }
  }
}

// Why the last sign-in failed ("" when it did not).
export function authFailure() {
  return failure;
}

// Starts the deployment's sign-in (cognito only; the local picker is a page of its own).
export async function signIn() {
  if (mode === "cognito" && provider) await provider.signIn();
}

export function authMode() {
  return mode;
}

export function currentIdentity() {
  if (mode === "cognito") return provider && provider.currentUser ? provider.currentUser() : "";
  const name = localStorage.getItem(KEY) || "";
  return NAME_PATTERN.test(name) ? name : "";
}

export function setIdentity(name) {
  if (!NAME_PATTERN.test(name)) throw new Error("an identity is 1-64 letters, digits, '_', '.', '@' or '-'");
  localStorage.setItem(KEY, name);
}

export function signOut() {
  if (mode === "cognito" && provider && provider.signOut) return provider.signOut();
  localStorage.removeItem(KEY);
}

export async function authorizationHeader() {
  if (mode === "cognito") return provider && provider.authorizationHeader ? provider.authorizationHeader() : "";
  const name = currentIdentity();
  if (!name) return "";
  const day = new Date().toISOString().slice(0, 10).replaceAll("-", "");
  return `AWS4-HMAC-SHA256 Credential=LOCAL${name}/${day}/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=local`;
}
