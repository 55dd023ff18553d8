#!/usr/bin/env bash
# Performance run: builds release binaries, then for each backend starts a fresh Propusk
# (new data directory / new Postgres database + Redis prefix, fresh keys, argon2id at the
# default OWASP parameters), registers a client and a user with the `idp` CLI, measures
# start-up to ready and idle RSS, runs every load-generator scenario, and records RSS after
# load. Optionally (PEER=1) runs the same load generator against node-oidc-provider in the
# same session so ratios are comparable. Stops everything it started.
#
#   scripts/bench.sh                         # SQLite and Postgres+Redis, 32 users, 10 s each
#   BACKENDS=sqlite DUR=5s scripts/bench.sh  # quicker
#   PEER=1 scripts/bench.sh                  # + node-oidc-provider (needs node and npm)
#
# Environment (defaults in brackets):
#   BACKENDS   "sqlite postgres"    which backends to run
#   SCENARIOS  all                  loadgen scenario list
#   VUS        32                   virtual users
#   DUR        10s                  measured time per scenario
#   WARM       2s                   warm-up per scenario
#   STARTS     3                    start-ups measured per backend (median reported)
#   OUT        target/bench/<stamp> results (JSON per run, summary.md)
#   PG_URL     postgres://postgres@127.0.0.1:5432/postgres   admin URL (a database is created;
#              its parameters, e.g. ?sslmode=disable, are kept for the server's connections)
#   REDIS_URL  redis://127.0.0.1:6379
#   IDP_BIN, LOADGEN_BIN            use these binaries instead of building
#   LOADGEN_ARGS                    extra loadgen flags, e.g. "--rate 2000" (open loop)
#   BENCH_ENV                       extra IDP_* settings for the server, e.g. "IDP_DB_POOL_SIZE=32"
#   BOUND_SECS 5                    seconds of each argon2id bound measurement (before and
#                                   after flow-fresh)
#   PEER       0                    1: also measure node-oidc-provider
#   PEER_DIR   shared/peer-node-oidc-provider next to the repo (copied to target/peer)
#   PEER_AT_FORMAT jwt              jwt|opaque access tokens on the peer
#
# Runtime with the defaults: about 2 min per backend plus 1.5 min for the peer, once the
# release build is up to date (a cold release build takes ~9 min on 2 cores). Every load
# step is bounded by DUR; everything talks to 127.0.0.1 only.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

BACKENDS=${BACKENDS:-"sqlite postgres"}
SCENARIOS=${SCENARIOS:-all}
VUS=${VUS:-32}
DUR=${DUR:-10s}
WARM=${WARM:-2s}
STARTS=${STARTS:-3}
BOUND_SECS=${BOUND_SECS:-5}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
PEER=${PEER:-0}
PEER_DIR=${PEER_DIR:-$ROOT/../shared/peer-node-oidc-provider}
PEER_AT_FORMAT=${PEER_AT_FORMAT:-jwt}
STAMP=$(date +%Y%m%dT%H%M%S)
OUT=${OUT:-$ROOT/target/bench/$STAMP}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ clean-up of what we start
SERVER_PID=""
PG_DB=""
REDIS_PREFIX=""
WORK=""
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
drop_backend() {
    if [ -n "$PG_DB" ]; then
        psql "$PG_URL" -q -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
        PG_DB=""
    fi
    if [ -n "$REDIS_PREFIX" ]; then
        # Bounded: SCAN through the prefix once, delete in batches.
        redis-cli -u "$REDIS_URL" --scan --pattern "${REDIS_PREFIX}*" 2>/dev/null \
            | head -n 1000000 | xargs -r -n 500 redis-cli -u "$REDIS_URL" DEL >/dev/null 2>&1 || true
        REDIS_PREFIX=""
    fi
    if [ -n "$WORK" ]; then rm -rf "$WORK"; WORK=""; fi
}
cleanup() { stop_server; drop_backend; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ binaries
if [ -z "${IDP_BIN:-}" ] || [ -z "${LOADGEN_BIN:-}" ]; then
    say "building release binaries (idp, loadgen)"
    t0=$(date +%s)
    cargo build --release -q -p idp --bin idp -p conformance-tests --bin loadgen
    echo "build_secs=$(( $(date +%s) - t0 ))" >> "$OUT/env.txt"
    TARGET_DIR=$(cargo metadata --format-version 1 --no-deps \
        | python3 -c 'import sys,json;print(json.load(sys.stdin)["target_directory"])')
    IDP_BIN=${IDP_BIN:-$TARGET_DIR/release/idp}
    LOADGEN_BIN=${LOADGEN_BIN:-$TARGET_DIR/release/loadgen}
fi
[ -x "$IDP_BIN" ] || die "no idp binary at $IDP_BIN"
[ -x "$LOADGEN_BIN" ] || die "no loadgen binary at $LOADGEN_BIN"
IDP_BIN=$(realpath "$IDP_BIN")
LOADGEN_BIN=$(realpath "$LOADGEN_BIN")

{
    echo "date: $(date -Is)"
    echo "host: $(uname -sr), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
    echo "load before start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
    echo "idp: $IDP_BIN"
    echo "params: SCENARIOS=$SCENARIOS VUS=$VUS DUR=$DUR WARM=$WARM"
} >> "$OUT/env.txt"

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kib() { awk '/^VmHWM/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END{if(NR==0){print "n/a"}else if(NR%2){print a[(NR+1)/2]}else{print int((a[NR/2]+a[NR/2+1])/2)}}'; }
json_field() { python3 -c 'import sys,json
for l in reversed(sys.stdin.read().splitlines()):
    l=l.strip()
    if l.startswith("{"):
        print(json.loads(l)[sys.argv[1]]); break' "$1"; }

# Starts `idp serve` (in $WORK) in the background; sets SERVER_PID and READY_MS (ms from
# exec until discovery answers 200).
start_server() { # $1 = log file
    local t0 url="http://127.0.0.1:$PORT/.well-known/openid-configuration"
    t0=$(now_ms)
    (cd "$WORK" && exec "$IDP_BIN" serve) >"$1" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 3000); do # at most ~30 s
        if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then
            READY_MS=$(( $(now_ms) - t0 )); return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$1" >&2; die "idp serve exited during start-up"; }
        sleep 0.005
    done
    die "idp serve was not ready within 30 s"
}

run_loadgen() { # $1 = name, rest = extra args; writes $OUT/$1.json and $OUT/$1.txt
    local name=$1; shift
    set +e
    # shellcheck disable=SC2086 # LOADGEN_ARGS is a list of flags
    "$LOADGEN_BIN" --json -s "$SCENARIOS" -c "$VUS" -d "$DUR" --warmup "$WARM" ${LOADGEN_ARGS:-} "$@" \
        >"$OUT/$name.json" 2>"$OUT/$name.txt"
    local rc=$?
    set -e
    [ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || { cat "$OUT/$name.txt" >&2; die "loadgen failed ($rc)"; }
    [ "$rc" -eq 0 ] || say "$name: errors were counted (see $OUT/$name.txt)"
    grep -A20 '^scenario' "$OUT/$name.txt" | sed -n '1,9p' >&2 || true
}

# flow-fresh runs on its own, between two measurements of the argon2id bound; the others
# run together.
SCENARIO_LIST=$SCENARIOS
[ "$SCENARIO_LIST" = all ] && SCENARIO_LIST=discovery,jwks,client-credentials,refresh,introspect,userinfo,flow-fresh,flow-sso
OTHER_SCENARIOS=$(printf '%s\n' "${SCENARIO_LIST//,/$'\n'}" | grep -vxE 'flow-fresh|fresh' | paste -sd, - || true)
FRESH=0
printf '%s\n' "${SCENARIO_LIST//,/$'\n'}" | grep -qxE 'flow-fresh|fresh' && FRESH=1

# ------------------------------------------------------------------ Propusk, per backend
BENCH_LOGIN=bench@example.ru
BENCH_PASSWORD="Bench-Passw0rd-Zq7!x"
REDIRECT=https://rp.example.org/cb

for backend in $BACKENDS; do
    say "Propusk on $backend"
    WORK=$(mktemp -d -t propusk-bench-XXXXXX)
    PORT=$(free_port)
    # Only these IDP_* variables reach the server.
    for v in $(env | grep -o '^IDP_[A-Z0-9_]*' || true); do
        case "$v" in IDP_BIN) ;; *) unset "$v" ;; esac
    done
    # Every virtual user signs in from 127.0.0.1: lift the per-address limits of sign-in
    # attempts and starts, which would otherwise (rightly) stop a flood of fresh sign-ins
    # from one address.
    export IDP_LISTEN=127.0.0.1:$PORT IDP_ISSUER=http://127.0.0.1:$PORT IDP_DEV=true \
        IDP_DATA_DIR=$WORK/data IDP_LOG=warn IDP_LOCKOUT__IP_MAX_ATTEMPTS=1000000000 \
        IDP_LOCKOUT__LOGIN_TX_IP_MAX=1000000000
    # Extra server settings for an experiment, e.g. BENCH_ENV="IDP_DB_POOL_SIZE=32".
    for kv in ${BENCH_ENV:-}; do export "${kv?}"; done
    case "$backend" in
        sqlite)
            export IDP_DATABASE_URL="sqlite://$WORK/propusk.db"
            unset IDP_REDIS_URL IDP_REDIS_PREFIX || true
            ;;
        postgres)
            PG_DB=propusk_bench_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
            psql "$PG_URL" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $PG_DB" >/dev/null
            # Keep the admin URL's parameters (e.g. ?sslmode=disable) for the server's URL.
            pg_base=${PG_URL%%\?*}
            pg_query=${PG_URL#"$pg_base"}
            export IDP_DATABASE_URL="${pg_base%/*}/$PG_DB$pg_query"
            REDIS_PREFIX="$PG_DB:"
            export IDP_REDIS_URL=$REDIS_URL IDP_REDIS_PREFIX=$REDIS_PREFIX
            ;;
        *) die "unknown backend $backend (sqlite, postgres)" ;;
    esac
    (cd "$WORK" && "$IDP_BIN" migrate) >"$OUT/$backend.migrate.log" 2>&1
    client_json=$(cd "$WORK" && "$IDP_BIN" clients add --name "Bench RP" --redirect-uri "$REDIRECT" \
        --grant-type authorization_code --grant-type refresh_token --grant-type client_credentials --json)
    CLIENT_ID=$(printf '%s\n' "$client_json" | json_field client_id)
    CLIENT_SECRET=$(printf '%s\n' "$client_json" | json_field client_secret)
    (cd "$WORK" && "$IDP_BIN" users add --login "$BENCH_LOGIN" --password "$BENCH_PASSWORD" \
        --given-name Anna --family-name Sidorova --json) >/dev/null

    # Start-up to ready: STARTS times, each a new process on the same data; the first start
    # also generates the signing key.
    starts=()
    for i in $(seq 1 "$STARTS"); do
        start_server "$OUT/$backend.serve$i.log"
        starts+=("$READY_MS")
        if [ "$i" -lt "$STARTS" ]; then stop_server; fi
    done
    echo "startup_ms=${starts[*]}" >> "$OUT/$backend.mem.txt"
    sleep 2
    echo "idle_rss_kib=$(rss_kib "$SERVER_PID")" >> "$OUT/$backend.mem.txt"
    ticks0=$(awk '{print $14+$15}' "/proc/$SERVER_PID/stat")
    propusk_load() { # $1 = run name, $2 = scenarios
        SCENARIOS=$2 LOADGEN_CLIENT_SECRET=$CLIENT_SECRET LOADGEN_PASSWORD=$BENCH_PASSWORD \
            run_loadgen "$1" --url "http://127.0.0.1:$PORT" --client-id "$CLIENT_ID" \
            --login "$BENCH_LOGIN" --redirect-uri "$REDIRECT"
    }
    [ -z "$OTHER_SCENARIOS" ] || propusk_load "propusk-$backend" "$OTHER_SCENARIOS"
    if [ "$FRESH" = 1 ]; then
        # flow-fresh between two measurements of the argon2id bound: the checks per second
        # of the server's own parameters and workers (`idp config password-capacity`, in its
        # own process while the server is idle), so the bound and the flows share a minute.
        password_capacity() {
            (cd "$WORK" && "$IDP_BIN" config password-capacity --seconds "$BOUND_SECS" --json) \
                | json_field checks_per_sec
        }
        bound_before=$(password_capacity)
        propusk_load "propusk-$backend.flow-fresh" flow-fresh
        bound_after=$(password_capacity)
        echo "argon2_bound_per_sec=$bound_before $bound_after" >> "$OUT/$backend.mem.txt"
    fi
    ticks1=$(awk '{print $14+$15}' "/proc/$SERVER_PID/stat")
    {
        echo "after_load_rss_kib=$(rss_kib "$SERVER_PID")"
        echo "peak_rss_kib=$(hwm_kib "$SERVER_PID")"
        echo "server_cpu_secs=$(( (ticks1 - ticks0) / $(getconf CLK_TCK) ))"
    } >> "$OUT/$backend.mem.txt"
    sleep 5
    echo "idle_after_rss_kib=$(rss_kib "$SERVER_PID")" >> "$OUT/$backend.mem.txt"
    stop_server
    drop_backend
    cat "$OUT/$backend.mem.txt" >&2
done

# ------------------------------------------------------------------ the peer, same session
if [ "$PEER" = 1 ]; then
    say "node-oidc-provider (AT_FORMAT=$PEER_AT_FORMAT)"
    [ -f "$PEER_DIR/server.js" ] || die "no peer at $PEER_DIR"
    PEER_COPY=$ROOT/target/peer
    if [ ! -d "$PEER_COPY/node_modules/oidc-provider" ]; then
        mkdir -p "$PEER_COPY"
        cp -r "$PEER_DIR/." "$PEER_COPY/"
        chmod -R u+w "$PEER_COPY"
        (cd "$PEER_COPY" && npm ci --no-audit --no-fund -s)
    fi
    PORT=$(free_port)
    t0=$(now_ms)
    (cd "$PEER_COPY" && NODE_ENV=production ALG=ES256 AT_FORMAT=$PEER_AT_FORMAT PORT=$PORT \
        exec node server.js) >"$OUT/peer.serve.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 3000); do
        curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/.well-known/openid-configuration" 2>/dev/null && break
        kill -0 "$SERVER_PID" 2>/dev/null || die "the peer exited during start-up"
        sleep 0.005
    done
    echo "startup_ms=$(( $(now_ms) - t0 ))" >> "$OUT/peer.mem.txt"
    sleep 2
    echo "idle_rss_kib=$(rss_kib "$SERVER_PID")" >> "$OUT/peer.mem.txt"
    # The peer binds the access tokens of its code flow to its API resource (urn:example:api),
    # so its /me refuses them and its introspection reports them inactive: no userinfo and no
    # introspect here (its own run.sh measures introspection of a client_credentials token).
    peer_sc=$SCENARIOS
    [ "$peer_sc" = all ] && peer_sc=discovery,jwks,client-credentials,refresh,flow-fresh,flow-sso
    ticks0=$(awk '{print $14+$15}' "/proc/$SERVER_PID/stat")
    SCENARIOS=$peer_sc LOADGEN_CLIENT_SECRET=conf-cc-secret-0123456789abcdef LOADGEN_PASSWORD=unused \
        run_loadgen peer --url "http://127.0.0.1:$PORT" --client-id conf-cc --login user1 \
        --redirect-uri http://127.0.0.1:9999/cb --fresh-prompt consent --cc-scope api:read
    ticks1=$(awk '{print $14+$15}' "/proc/$SERVER_PID/stat")
    {
        echo "after_load_rss_kib=$(rss_kib "$SERVER_PID")"
        echo "peak_rss_kib=$(hwm_kib "$SERVER_PID")"
        echo "server_cpu_secs=$(( (ticks1 - ticks0) / $(getconf CLK_TCK) ))"
    } >> "$OUT/peer.mem.txt"
    stop_server
    cat "$OUT/peer.mem.txt" >&2
fi

# ------------------------------------------------------------------ summary
python3 - "$OUT" <<'EOF' | tee "$OUT/summary.md"
import json, os, sys
out = sys.argv[1]
runs = {}
for f in sorted(os.listdir(out)):
    if f.endswith(".json"):
        try:
            # "<run>.<part>.json" (flow-fresh, run on its own) joins the run "<run>".
            run = f[:-5].split(".")[0]
            runs.setdefault(run, {}).update({s["scenario"]: s for s in json.load(open(os.path.join(out, f)))["scenarios"]})
        except Exception as e:
            print(f"<!-- {f}: {e} -->")
def mem(name):
    d = {}
    p = os.path.join(out, f"{name}.mem.txt")
    if os.path.exists(p):
        for l in open(p):
            k, _, v = l.strip().partition("=")
            d[k] = v
    return d
names = list(runs)
order = ["discovery", "jwks", "client-credentials", "refresh", "introspect", "userinfo", "flow-fresh", "flow-sso"]
print("| scenario | " + " | ".join(f"{n} ok/s | p50 / p99 ms | err" for n in names) + " |")
print("|---|" + "---|---|---|" * len(names))
for sc in order:
    cells = []
    for n in names:
        s = runs[n].get(sc)
        if s is None:
            cells += ["-", "-", "-"]
        else:
            cells += [f"{s['throughput']:.0f}", f"{s['latency_ms']['p50']:.2f} / {s['latency_ms']['p99']:.2f}", str(s["errors"])]
    print(f"| {sc} | " + " | ".join(cells) + " |")
print()
for n in names:
    key = n.replace("propusk-", "")
    m = mem(key)
    if m:
        print(f"- {n}: " + ", ".join(f"{k}={v}" for k, v in m.items()))
for n in names:
    bound = mem(n.replace("propusk-", "")).get("argon2_bound_per_sec", "").split()
    fresh = runs[n].get("flow-fresh")
    if bound and fresh:
        mean = sum(float(b) for b in bound) / len(bound)
        print(f"- {n}: flow-fresh {fresh['throughput']:.1f}/s, argon2id bound "
              + " / ".join(f"{float(b):.1f}" for b in bound)
              + f" checks/s (before / after): {100 * fresh['throughput'] / mean:.0f} % of their mean")
peer = runs.get("peer")
if peer:
    print()
    print("Ratios Propusk / peer (same session):")
    for n in names:
        if n == "peer":
            continue
        parts = []
        for sc in order:
            if sc in runs[n] and sc in peer and peer[sc]["throughput"] > 0:
                parts.append(f"{sc} {runs[n][sc]['throughput'] / peer[sc]['throughput']:.2f}x")
        print(f"- {n}: " + ", ".join(parts))
EOF
say "results in $OUT"
