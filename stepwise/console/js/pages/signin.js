// Sign-in: locally an identity picker, clearly marked as local (the local cloud does not
// authenticate); on AWS a button to the user pool's managed login.
import { authFailure, authMode, currentIdentity, NAME_PATTERN, setIdentity, signIn } from "../auth.js";
import { h, message } from "../dom.js";

export async function signInPage(view, { query, config }) {
  if (authMode() !== "local") {
    view.append(h("h1", {}, "Sign in"));
    if (authFailure()) view.append(message("error", authFailure()));
    view.append(
      message("info", "Sign in with your account of this deployment's user pool (its login page opens)."),
      h("button", { type: "button", id: "cognito-signin", onclick: () => signIn() }, "Sign in"),
    );
    return;
  }
  const next = query.get("next") || "#/";
  const known = (config.identities || []).map((i) => i.name);
  const list = h("datalist", { id: "identity-options" }, known.map((n) => h("option", { value: n })));
  const input = h("input", {
    id: "identity-input",
    name: "identity",
    type: "text",
    value: currentIdentity(),
    required: "",
    autocomplete: "off",
    list: "identity-options",
    pattern: NAME_PATTERN.source.slice(1, -1),
  });
  const status = h("div", { "aria-live": "polite" });
  const pick = (name) => {
    try {
      setIdentity(name.trim());
    } catch (err) {
      status.replaceChildren(message("error", err.message));
      return;
    }
    location.hash = next.startsWith("#/") ? next : "#/";
  };
  const form = h(
    "form",
    { className: "stack", onsubmit: (e) => { e.preventDefault(); pick(input.value); } },
    h("label", { htmlFor: "identity-input" }, "Identity (the caller the local API records)"),
    input,
    list,
    h("button", { type: "submit", id: "identity-submit" }, "Use this identity"),
  );
  const personas = (config.identities || []).filter((i) => i.persona);
  view.append(
    h("h1", {}, "Choose a local identity"),
    message(
      "warn",
      "Local cloud: there is no password. The name you pick is the identity the local API records for every " +
        "call (approvals, rollbacks, audit), so you can act as two people to exercise four-eyes.",
    ),
    form,
    status,
    known.length
      ? h(
          "div",
          { className: "stack" },
          h("h2", {}, "Known identities"),
          h(
            "ul",
            { className: "choices" },
            known.map((n) =>
              h("li", {}, h("button", { type: "button", "data-identity": n, onclick: () => pick(n) }, n)),
            ),
          ),
        )
      : null,
    personas.length
      ? h("p", {}, "Strict auth is on: " + personas.map((p) => `${p.name} is held to ${p.persona}`).join("; ") + ".")
      : null,
  );
}
