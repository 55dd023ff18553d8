#!/usr/bin/env bash
# The one command that runs every test: build, all tests of every crate (SQLite + memory,
# and Postgres + Redis), the browser tests in headless Chromium, clippy, rustfmt. On a fresh
# Debian machine it first installs what is missing and starts Postgres and Redis
# (scripts/ensure-services.sh).
#
#   scripts/test.sh                      everything
#   scripts/test.sh -- <filter>          pass extra arguments to the test runner
#   TEST_DATABASE_URL=... TEST_REDIS_URL=...   use other servers (not started here)
#   PROPUSK_SQLITE_ONLY=1                skip the Postgres + Redis backend
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
fail() { printf '\033[1;31mFAILED: %s\033[0m\n' "$*" >&2; exit 1; }

extra=()
if [ "${1:-}" = "--" ]; then shift; extra=("$@"); fi

if [ "${PROPUSK_SQLITE_ONLY:-0}" = 1 ]; then
    PROPUSK_SKIP_SERVICES=1 bash scripts/ensure-services.sh || fail "preparing the machine"
    unset TEST_DATABASE_URL TEST_REDIS_URL
else
    if [ -n "${TEST_DATABASE_URL:-}" ] && [ -n "${TEST_REDIS_URL:-}" ]; then
        PROPUSK_SKIP_SERVICES=1 bash scripts/ensure-services.sh || fail "preparing the machine"
    else
        bash scripts/ensure-services.sh || fail "preparing the machine (packages, Postgres, Redis)"
    fi
    export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
    export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
    say "backends: SQLite + memory, Postgres ($TEST_DATABASE_URL) + Redis ($TEST_REDIS_URL)"
fi
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

# Every step runs even when an earlier one failed (except the build), so one run reports
# everything; the script exits non-zero when any step failed.
failed=()
step() { # name command...
    local name="$1"; shift
    say "$name: $*"
    if ! "$@"; then
        printf '\033[1;31mstep failed: %s\033[0m\n' "$name" >&2
        failed+=("$name")
    fi
}

say "build: cargo build -p idp --bins"
cargo build -p idp --bins || fail "cargo build -p idp --bins"

if cargo nextest --version >/dev/null 2>&1; then
    step "tests" cargo nextest run --workspace --no-fail-fast "${extra[@]}"
    step "doc tests" cargo test --workspace --doc
else
    step "tests" cargo test --workspace --no-fail-fast "${extra[@]}"
fi
# Browser tests: the real pages in headless Chromium (Debian's /usr/bin/chromium driven by
# playwright-core, which downloads no browser). `npm ci` only when node_modules is missing or
# older than package-lock.json (npm's own copy of the lock in node_modules marks the install).
browser_tests() {
    local dir=conformance-tests/browser
    if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
        [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund) || return 1
    fi
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 node --test "$dir"/*.test.mjs
}
step "browser" browser_tests
step "clippy" cargo clippy --workspace --all-targets -- -D warnings
step "rustfmt" cargo fmt --all -- --check

if [ "${#failed[@]}" -gt 0 ]; then
    fail "${failed[*]}"
fi
say "all checks passed"
