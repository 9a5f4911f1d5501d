#!/usr/bin/env bash
# Entry point of `make bench`: prepare the environments, then run benchmarks/auth_cost.py
# (what authentication costs per request, about a minute) and benchmarks/registry_ops.py.
#
#   bash benchmarks/run.sh [registry_ops.py options]    e.g. --quick, --backends sqlite,
#                                                        --workers 1,2, --only cairn
#
# auth_cost.py gets the options it shares (--quick, --backends, --engine, --no-write);
# BENCH_AUTH_COST=0 skips it.
#
# - the project's .venv (Cairn server and the harness itself), created if missing;
# - benchmarks/.venv-mlflow with a stock MLflow 3.x and psycopg2 (MLflow's PostgreSQL driver);
# - wrk (the load generator) and curl (transfer.py's C client) from Debian's packages;
# - PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) for the PostgreSQL rounds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/benchmarks"
MLFLOW_SPEC='mlflow>=3.17,<4'
PSYCOPG2_SPEC='psycopg2-binary>=2.9,<3'
PG_DSN='postgresql://postgres@127.0.0.1:5432/postgres'
TOTAL_BUDGET_S=1110 # 18.5 min for set-up and runs; rendering and the last stops fit in 20

log() { printf '[run.sh] %s\n' "$*" >&2; }

ensure_project_venv() {
    if [[ ! -x "$ROOT/.venv/bin/cairn" ]]; then
        log "creating $ROOT/.venv"
        [[ -x "$ROOT/.venv/bin/python" ]] || python3 -m venv "$ROOT/.venv"
        "$ROOT/.venv/bin/pip" install -q -e "$ROOT"
    fi
}

ensure_mlflow_venv() {
    local venv="$BENCH/.venv-mlflow"
    if "$venv/bin/python" - "$MLFLOW_SPEC" "$PSYCOPG2_SPEC" 2>/dev/null <<'EOF'
import sys
from importlib.metadata import version
from packaging.requirements import Requirement

for spec in sys.argv[1:]:
    req = Requirement(spec)
    if not req.specifier.contains(version(req.name), prereleases=False):
        sys.exit(1)
EOF
    then
        return
    fi
    log "installing $MLFLOW_SPEC and $PSYCOPG2_SPEC into $venv (takes a few minutes)"
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q "$MLFLOW_SPEC" "$PSYCOPG2_SPEC" packaging
}

ensure_tools() {
    local missing=()
    for tool in wrk curl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
    [[ ${#missing[@]} -eq 0 ]] && return
    log "installing ${missing[*]}"
    if [[ $(id -u) -eq 0 ]]; then
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

wants_postgres() {
    local prev=""
    for arg in "$@"; do
        if [[ "$prev" == "--backends" ]]; then [[ "$arg" == *postgresql* ]]; return; fi
        if [[ "$arg" == --backends=* ]]; then [[ "$arg" == *postgresql* ]]; return; fi
        prev="$arg"
    done
    return 0 # default backends include PostgreSQL
}

check_postgres() {
    if ! "$ROOT/.venv/bin/python" -c "import psycopg; psycopg.connect('$PG_DSN', connect_timeout=5).close()" >/dev/null 2>&1; then
        log "PostgreSQL is not reachable on 127.0.0.1:5432 as user postgres;"
        log "start it, or pass --backends sqlite"
        exit 2
    fi
}

# The options of registry_ops.py that auth_cost.py shares, one per line.
auth_cost_args() {
    local pass_next=0
    for arg in "$@"; do
        if [[ $pass_next -eq 1 ]]; then printf '%s\n' "$arg"; pass_next=0; continue; fi
        case "$arg" in
            --quick | --no-write | --backends=* | --engine=*) printf '%s\n' "$arg" ;;
            --backends | --engine) printf '%s\n' "$arg"; pass_next=1 ;;
        esac
    done
}

run_auth_cost() {
    [[ "${BENCH_AUTH_COST:-1}" == 0 ]] && return
    local args=()
    mapfile -t args < <(auth_cost_args "$@")
    log "auth_cost.py ${args[*]}"
    if ! (cd "$BENCH" && "$ROOT/.venv/bin/python" auth_cost.py "${args[@]}"); then
        log "auth_cost.py FAILED (see above); going on with registry_ops.py"
    fi
}

ensure_project_venv
ensure_mlflow_venv
ensure_tools
if wants_postgres "$@"; then check_postgres; fi
run_auth_cost "$@"

# The whole of `make bench` stays under 20 minutes: what set-up and auth_cost.py took comes off
# the harness's time budget (an explicit --budget given on the command line still wins).
BUDGET=$((TOTAL_BUDGET_S - SECONDS))
BENCH_COMMAND="bash benchmarks/run.sh"
if [[ $# -gt 0 ]]; then BENCH_COMMAND+="$(printf ' %q' "$@")"; fi
export BENCH_COMMAND
cd "$BENCH"
exec "$ROOT/.venv/bin/python" registry_ops.py --budget "$BUDGET" "$@"
