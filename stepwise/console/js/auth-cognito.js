// The sign-in of the AWS deployment (config "auth": "cognito"): the user pool's managed login with
// the authorization-code + PKCE flow (no client secret). The access token is what the console's API
// authorizer checks (its scopes carry the user's personas), so it is the Authorization header.
// Tokens live in sessionStorage: one browser tab's session, gone when the tab closes.
//
// Flow: signIn() stores a random state and PKCE verifier and sends the browser to
// <domain>/oauth2/authorize; the pool redirects back to <origin>/?code=..&state=..; init() checks the
// state, exchanges the code with the verifier at <domain>/oauth2/token, stores the tokens and
// returns to the page the user was on. An expired token sends the user through sign-in again.

const TOKENS = "stepwise.console.tokens";
const PENDING = "stepwise.console.pkce";

let settings = null;

function base64url(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function randomText(size) {
  return base64url(crypto.getRandomValues(new Uint8Array(size)));
}

async function challengeOf(verifier) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

function claimsOf(token) {
  try {
    const part = token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return {};
  }
}

function redirectUri() {
  return `${location.origin}/`;
}

function domain() {
  return String(settings.userPoolDomain || "").replace(/\/+$/, "");
}

function stored() {
  try {
    const tokens = JSON.parse(sessionStorage.getItem(TOKENS) || "null");
    if (tokens && tokens.access_token && Date.now() < tokens.expires_at) return tokens;
  } catch {
    // unreadable: treated as signed out
  }
  return null;
}

async function exchange(code, pending) {
  const body = new URLSearchParams({
    grant_type: "authorization_code",
    client_id: settings.clientId,
    code,
    redirect_uri: redirectUri(),
    code_verifier: pending.verifier,
  });
  const reply = await fetch(`${domain()}/oauth2/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body,
  });
  if (!reply.ok) throw new Error(`sign-in failed: the user pool answered HTTP ${reply.status}`);
  const tokens = await reply.json();
  const lifetime = Number(tokens.expires_in || 3600) * 1000;
  sessionStorage.setItem(
    TOKENS,
    JSON.stringify({ access_token: tokens.access_token, id_token: tokens.id_token, expires_at: Date.now() + lifetime - 30_000 }),
  );
}

export async function init(config) {
  settings = config;
  const query = new URLSearchParams(location.search);
  const code = query.get("code");
  if (!code) return;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  const back = pending && pending.hash ? pending.hash : "#/";
  history.replaceState(null, "", `${location.pathname}${back}`);
  if (!pending || query.get("state") !== pending.state) throw new Error("sign-in failed: the reply's state does not match");
  await exchange(code, pending);
}

export async function signIn() {
  const verifier = randomText(48);
  const state = randomText(16);
  const next = new URLSearchParams(location.hash.split("?")[1] || "").get("next");
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, hash: next && next.startsWith("#/") ? next : "#/" }));
  const query = new URLSearchParams({
    response_type: "code",
    client_id: settings.clientId,
    redirect_uri: redirectUri(),
    scope: "openid email profile",
    state,
    code_challenge: await challengeOf(verifier),
    code_challenge_method: "S256",
  });
  location.assign(`${domain()}/oauth2/authorize?${query}`);
}

export function currentUser() {
  const tokens = stored();
  if (!tokens) return "";
  const claims = claimsOf(tokens.id_token || tokens.access_token);
  return String(claims["cognito:username"] || claims.username || claims.email || claims.sub || "");
}

export function authorizationHeader() {
  const tokens = stored();
  return tokens ? tokens.access_token : "";
}

export function signOut() {
  sessionStorage.removeItem(TOKENS);
  const query = new URLSearchParams({ client_id: settings.clientId, logout_uri: redirectUri() });
  location.assign(`${domain()}/logout?${query}`);
}
