#!/usr/bin/env python3
"""A demo relying portal ("service cabinet") that signs in through Propusk by plain OIDC.

Authorization code + PKCE (S256), state and nonce, the code exchanged at the token endpoint
with client_secret_basic, the ID token's claims and the userinfo answer shown on a page.
Python standard library only; it trusts the TLS of the issuer for the token call and does
not verify the ID token signature itself (a real portal would, with the issuer's JWKS).

    cargo run -p idp -- serve --demo            # in one terminal
    python3 examples/service_cabinet.py         # in another; open http://127.0.0.1:8081/
"""

import base64
import hashlib
import html
import json
import os
import secrets
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

ISSUER = os.environ.get("ISSUER", "http://127.0.0.1:8080")
CLIENT_ID = os.environ.get("CLIENT_ID", "demo-portal")
CLIENT_SECRET = os.environ.get("CLIENT_SECRET", "demo-portal-secret")
LISTEN = ("127.0.0.1", int(os.environ.get("PORT", "8081")))
REDIRECT_URI = f"http://{LISTEN[0]}:{LISTEN[1]}/callback"
SCOPE = "openid profile email phone"

PENDING = {}  # state -> (verifier, nonce)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def discovery() -> dict:
    with urllib.request.urlopen(f"{ISSUER}/.well-known/openid-configuration") as r:
        return json.load(r)


def jwt_claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def page(title: str, body: str) -> bytes:
    return (
        "<!DOCTYPE html><html lang='ru'><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><body style='font-family:sans-serif;max-width:46rem;margin:2rem auto'>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    ).encode()


class Portal(BaseHTTPRequestHandler):
    def send(self, status: int, body: bytes, location: str = "") -> None:
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/":
            self.send(200, page("Личный кабинет", "<p><a href='/login'>Войти через Пропуск</a></p>"))
        elif url.path == "/login":
            self.start_login()
        elif url.path == "/callback":
            self.callback(dict(urllib.parse.parse_qsl(url.query)))
        else:
            self.send(404, page("Не найдено", ""))

    def start_login(self) -> None:
        state, nonce, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(16), secrets.token_urlsafe(48)
        PENDING[state] = (verifier, nonce)
        challenge = b64url(hashlib.sha256(verifier.encode()).digest())
        query = urllib.parse.urlencode({
            "client_id": CLIENT_ID, "response_type": "code", "scope": SCOPE,
            "redirect_uri": REDIRECT_URI, "state": state, "nonce": nonce,
            "code_challenge": challenge, "code_challenge_method": "S256",
        })
        self.send(302, b"", f"{discovery()['authorization_endpoint']}?{query}")

    def callback(self, params: dict) -> None:
        pending = PENDING.pop(params.get("state", ""), None)
        if pending is None:
            self.send(400, page("Ошибка", "<p>Неизвестный или повторный state.</p>"))
            return
        if "error" in params:
            self.send(400, page("Вход не выполнен", f"<p>{html.escape(params['error'])}</p>"))
            return
        if params.get("iss") != ISSUER:
            self.send(400, page("Ошибка", "<p>Ответ пришёл не от того издателя (iss).</p>"))
            return
        verifier, nonce = pending
        meta = discovery()
        form = urllib.parse.urlencode({
            "grant_type": "authorization_code", "code": params.get("code", ""),
            "redirect_uri": REDIRECT_URI, "code_verifier": verifier,
        }).encode()
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        req = urllib.request.Request(meta["token_endpoint"], data=form, headers={"Authorization": f"Basic {basic}"})
        with urllib.request.urlopen(req) as r:
            tokens = json.load(r)
        claims = jwt_claims(tokens["id_token"])
        if claims.get("nonce") != nonce or claims.get("aud") != CLIENT_ID or claims.get("iss") != ISSUER:
            self.send(400, page("Ошибка", "<p>ID-токен не прошёл проверку.</p>"))
            return
        req = urllib.request.Request(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {tokens['access_token']}"})
        with urllib.request.urlopen(req) as r:
            userinfo = json.load(r)
        body = (
            f"<p>Вы вошли: <strong>{html.escape(str(userinfo.get('name', claims['sub'])))}</strong></p>"
            f"<h2>ID-токен</h2><pre>{html.escape(json.dumps(claims, ensure_ascii=False, indent=2))}</pre>"
            f"<h2>UserInfo</h2><pre>{html.escape(json.dumps(userinfo, ensure_ascii=False, indent=2))}</pre>"
        )
        self.send(200, page("Личный кабинет", body))


if __name__ == "__main__":
    print(f"Service cabinet on http://{LISTEN[0]}:{LISTEN[1]}/ (issuer {ISSUER})")
    HTTPServer(LISTEN, Portal).serve_forever()
