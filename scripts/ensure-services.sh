#!/usr/bin/env bash
# Makes a Debian machine ready for scripts/test.sh: installs what is missing (system
# packages, Chromium and Node.js for the browser tests, Rust toolchain), starts Postgres and
# Redis on 127.0.0.1 when they are not reachable, and lets user `postgres` connect over TCP
# from 127.0.0.1 without a password.
# A machine that already has everything pays only a few `dpkg -s` calls.
#
# Environment:
#   PROPUSK_SKIP_INSTALL=1   never call apt-get / rustup
#   PROPUSK_SKIP_SERVICES=1  do not start Postgres/Redis (tests then use SQLite + memory only
#                            unless TEST_DATABASE_URL / TEST_REDIS_URL point elsewhere)
set -euo pipefail

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO=""; fi
fi

reachable() { # host port
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0 || return 1
}

# ------------------------------------------------------------------ system packages
# package:command-or-empty — a package counts as present when dpkg knows it or, when a
# command is given, when that command exists (e.g. psql from postgresql-client-15).
# chromium, nodejs and npm run the browser suite (conformance-tests/browser: playwright-core
# drives Debian's /usr/bin/chromium; no browser is downloaded).
PACKAGES=(build-essential:cc pkg-config:pkg-config libpq-dev: libssl-dev: openssl:openssl oathtool:oathtool postgresql:pg_ctlcluster
    postgresql-client:psql redis-server:redis-server redis-tools:redis-cli curl:curl ca-certificates:
    chromium:chromium nodejs:node npm:npm)
missing=()
for entry in "${PACKAGES[@]}"; do
    p="${entry%%:*}"
    c="${entry#*:}"
    if [ -n "$c" ] && command -v "$c" >/dev/null 2>&1; then continue; fi
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "${PROPUSK_SKIP_INSTALL:-0}" = 1 ]; then
        say "missing packages (not installing, PROPUSK_SKIP_INSTALL=1): ${missing[*]}"
    elif ! command -v apt-get >/dev/null 2>&1; then
        say "missing packages and no apt-get: ${missing[*]} — install them by hand"
    else
        say "installing: ${missing[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi

# ------------------------------------------------------------------ Rust toolchain
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    [ "${PROPUSK_SKIP_INSTALL:-0}" = 1 ] && die "cargo not found"
    say "installing the Rust toolchain (rustup, minimal profile + clippy + rustfmt)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy -c rustfmt >/dev/null
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1 && [ "${PROPUSK_SKIP_INSTALL:-0}" != 1 ]; then
        say "adding clippy and rustfmt"
        rustup component add clippy rustfmt >/dev/null
    fi
fi

# ------------------------------------------------------------------ aiosmtpd
# The notify tests deliver mail to a real SMTP server: Python's aiosmtpd, from PyPI.
if ! python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
    if [ "${PROPUSK_SKIP_INSTALL:-0}" = 1 ]; then
        say "aiosmtpd is missing (not installing, PROPUSK_SKIP_INSTALL=1)"
    else
        say "installing aiosmtpd (PyPI)"
        if ! python3 -m pip --version >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
            $SUDO apt-get update -qq
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
        fi
        # Debian's system Python refuses pip installs unless told (PEP 668).
        python3 -m pip install --quiet aiosmtpd 2>/dev/null \
            || python3 -m pip install --quiet --break-system-packages aiosmtpd
    fi
fi

[ "${PROPUSK_SKIP_SERVICES:-0}" = 1 ] && exit 0

# ------------------------------------------------------------------ Postgres
PG_URL="postgres://postgres@127.0.0.1:5432/postgres"
pg_version() {
    local v
    v="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1 || true)"
    printf '%s' "$v"
}
# Local test use only: trust user postgres over TCP from the loopback address.
allow_trust() { # version
    local hba="/etc/postgresql/$1/main/pg_hba.conf"
    [ -f "$hba" ] || return 1
    if ! $SUDO grep -qE '^host\s+all\s+postgres\s+127\.0\.0\.1/32\s+trust' "$hba"; then
        say "allowing passwordless TCP login for user postgres from 127.0.0.1 (test machine)"
        $SUDO sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
        return 0
    fi
    return 1
}
pg_login_ok() {
    PGCONNECT_TIMEOUT=5 psql "$PG_URL" -v ON_ERROR_STOP=1 -qtAc 'select 1' >/dev/null 2>&1
}

if reachable 127.0.0.1 5432; then
    say "Postgres is reachable on 127.0.0.1:5432"
    if ! pg_login_ok; then
        ver="$(pg_version)"
        if [ -n "$ver" ] && allow_trust "$ver"; then
            $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main reload || true
            sleep 1
        fi
        pg_login_ok || die "cannot log in as postgres at $PG_URL; set TEST_DATABASE_URL to a URL that can CREATE DATABASE"
    fi
else
    command -v pg_ctlcluster >/dev/null 2>&1 || die "Postgres is not reachable and pg_ctlcluster is missing (install postgresql)"
    ver="$(pg_version)"
    if [ -z "$ver" ]; then
        ver="$(ls /usr/lib/postgresql | sort -V | tail -n1)"
        say "creating Postgres cluster $ver/main"
        $SUDO pg_createcluster "$ver" main >/dev/null
    fi
    allow_trust "$ver" || true
    say "starting Postgres $ver/main"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
    for _ in $(seq 1 50); do reachable 127.0.0.1 5432 && break; sleep 0.2; done
    reachable 127.0.0.1 5432 || die "Postgres did not come up on 127.0.0.1:5432"
    for _ in $(seq 1 25); do pg_login_ok && break; sleep 0.2; done
    pg_login_ok || die "Postgres is up but $PG_URL does not accept logins"
fi

# ------------------------------------------------------------------ Redis
if reachable 127.0.0.1 6379; then
    say "Redis is reachable on 127.0.0.1:6379"
else
    command -v redis-server >/dev/null 2>&1 || die "Redis is not reachable and redis-server is missing"
    say "starting Redis on 127.0.0.1:6379 (no persistence)"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 1 50); do reachable 127.0.0.1 6379 && break; sleep 0.1; done
    reachable 127.0.0.1 6379 || die "Redis did not come up on 127.0.0.1:6379"
fi
