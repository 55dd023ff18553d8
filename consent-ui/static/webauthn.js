// WebAuthn on Propusk pages: passkey sign-in (conditional UI / autofill and a button),
// a security key as the second factor, enrolment and confirmation on the security page.
//
// Each form with `data-webauthn` (`conditional`, `get` or `create`) and `data-start` works
// the same way: its fields are posted to `data-start`, which answers
// `{ ceremony, options }`; the browser runs the ceremony; the result is put into the
// hidden `credential` field (JSON, base64url) with `ceremony`, and the form is submitted.
// The server answers with the next page, so every message is rendered there, in the
// person's language: a cancelled or failed ceremony submits `client_error` instead.
(function () {
  "use strict";

  function toBytes(b64url) {
    var s = String(b64url).replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) {
      s += "=";
    }
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) {
      out[i] = bin.charCodeAt(i);
    }
    return out.buffer;
  }

  function toB64url(buf) {
    if (!buf) {
      return null;
    }
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) {
      bin += String.fromCharCode(bytes[i]);
    }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(pk) {
    pk.challenge = toBytes(pk.challenge);
    pk.user.id = toBytes(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) {
      c.id = toBytes(c.id);
    });
    return pk;
  }

  function requestOptions(pk) {
    pk.challenge = toBytes(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) {
      c.id = toBytes(c.id);
    });
    return pk;
  }

  function registrationJson(cred) {
    var r = cred.response;
    return JSON.stringify({
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: toB64url(r.attestationObject),
        clientDataJSON: toB64url(r.clientDataJSON),
        transports: typeof r.getTransports === "function" ? r.getTransports() : undefined
      },
      extensions: {}
    });
  }

  function assertionJson(cred) {
    var r = cred.response;
    return JSON.stringify({
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: toB64url(r.authenticatorData),
        clientDataJSON: toB64url(r.clientDataJSON),
        signature: toB64url(r.signature),
        userHandle: toB64url(r.userHandle)
      },
      extensions: {}
    });
  }

  function field(form, name) {
    return form.querySelector('input[name="' + name + '"]');
  }

  // The WebAuthn forms carry no hidden fields of their own (a page has one `tx` and one
  // `csrf` for the scripts that post all of its hidden fields): they are added here.
  function setField(form, name, value) {
    var f = field(form, name);
    if (!f) {
      f = document.createElement("input");
      f.type = "hidden";
      f.name = name;
      form.appendChild(f);
    }
    f.value = value;
  }

  function pageValue(name) {
    var f = document.querySelector('input[name="' + name + '"]');
    return f ? f.value : null;
  }

  function copyPageFields(form) {
    ["tx", "csrf"].forEach(function (name) {
      var v = pageValue(name);
      if (v !== null && !field(form, name)) {
        setField(form, name, v);
      }
    });
    // On the login page, "remember me" lives in the password form.
    var box = document.getElementById("remember");
    if (box) {
      setField(form, "remember", box.checked ? "on" : "");
    }
  }

  function start(form) {
    copyPageFields(form);
    var body = new URLSearchParams(new FormData(form));
    return fetch(form.getAttribute("data-start"), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: body.toString(),
      credentials: "same-origin"
    }).then(function (r) {
      if (r.status === 429) {
        // Too many key requests: the server's message, in the page's language.
        return r.json().then(function (body) {
          var e = new Error(body.error_description || "");
          e.name = "TooManyRequests";
          throw e;
        });
      }
      if (!r.ok) {
        throw new Error("start " + r.status);
      }
      return r.json();
    });
  }

  // Shows `text` in the form as an alert (no new ceremony will help for a while).
  function showAlert(form, text) {
    var p = form.querySelector("p[data-webauthn-alert]");
    if (!p) {
      p = document.createElement("p");
      p.className = "alert";
      p.setAttribute("role", "alert");
      p.setAttribute("data-webauthn-alert", "");
      form.insertBefore(p, form.firstChild);
    }
    p.textContent = text;
  }

  function finish(form, ceremony, credentialJson) {
    setField(form, "ceremony", ceremony || "");
    setField(form, "credential", credentialJson || "");
    setField(form, "client_error", "");
    copyPageFields(form);
    form.submit();
  }

  function fail(form, err) {
    setField(form, "client_error", (err && err.name) || "Error");
    setField(form, "credential", "");
    copyPageFields(form);
    form.submit();
  }

  function sameSite(rpId) {
    var h = location.hostname;
    return h === rpId || h.slice(-(rpId.length + 1)) === "." + rpId;
  }

  var busy = false;
  var conditional = null;

  function run(form, mode) {
    if (busy) {
      return;
    }
    busy = true;
    if (conditional) {
      conditional.abort();
      conditional = null;
    }
    start(form)
      .then(function (res) {
        var pk = res.options.publicKey;
        if (mode === "create") {
          return navigator.credentials
            .create({ publicKey: creationOptions(pk) })
            .then(function (cred) {
              finish(form, res.ceremony, registrationJson(cred));
            });
        }
        return navigator.credentials
          .get({ publicKey: requestOptions(pk) })
          .then(function (cred) {
            finish(form, res.ceremony, assertionJson(cred));
          });
      })
      .catch(function (err) {
        busy = false;
        if (err && err.name === "TooManyRequests" && err.message) {
          showAlert(form, err.message);
          return;
        }
        fail(form, err);
      });
  }

  // Autofill: the browser offers the passkeys in the identifier field's suggestions.
  function startConditional(form) {
    if (
      !window.PublicKeyCredential ||
      typeof PublicKeyCredential.isConditionalMediationAvailable !== "function"
    ) {
      return;
    }
    PublicKeyCredential.isConditionalMediationAvailable()
      .then(function (ok) {
        if (!ok || busy) {
          return null;
        }
        return start(form).then(function (res) {
          var rpId = res.options.publicKey.rpId;
          // A page opened under another name (e.g. an IP address) cannot use these keys.
          if (busy || (rpId && !sameSite(rpId))) {
            return;
          }
          conditional = new AbortController();
          return navigator.credentials
            .get({
              publicKey: requestOptions(res.options.publicKey),
              mediation: "conditional",
              signal: conditional.signal
            })
            .then(function (cred) {
              if (cred && !busy) {
                busy = true;
                finish(form, res.ceremony, assertionJson(cred));
              }
            });
        });
      })
      .catch(function () {
        // Aborted for the button, or not offered: nothing to say.
      });
  }

  function setup(form) {
    var mode = form.getAttribute("data-webauthn");
    if (!window.PublicKeyCredential || !navigator.credentials) {
      var note = form.querySelector("[data-webauthn-unsupported]");
      if (note) {
        note.hidden = false;
      }
      form.querySelectorAll("button[data-kind]").forEach(function (b) {
        b.disabled = true;
      });
      return;
    }
    form.querySelectorAll("button[data-kind]").forEach(function (b) {
      b.hidden = false;
      b.addEventListener("click", function () {
        setField(form, "kind", b.getAttribute("data-kind"));
        run(form, mode === "create" ? "create" : "get");
      });
    });
    if (mode === "conditional") {
      startConditional(form);
    }
  }

  function init() {
    document.querySelectorAll("form[data-webauthn]").forEach(setup);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
