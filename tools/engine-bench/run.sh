#!/usr/bin/env bash
# Runs the engine benchmark and its DBOS peers in one go and prints the ratios.
#   tools/engine-bench/run.sh [capstan workflows (10000)] [dbos workflows (100)] [history steps (1,30)]
# Needs: a release build of engine-bench, `pip install dbos`, Debian's postgresql (a
# throwaway server is started on 127.0.0.1 in a temp dir, as user postgres when run as root).
set -euo pipefail
cd "$(dirname "$0")/../.."
workflows=${1:-10000}
dbos_workflows=${2:-100}
history_steps=${3:-1,30}
steps=10
scratch=$(mktemp -d /tmp/engine-bench.XXXXXX)
chmod 777 "$scratch"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
port=55433

cleanup() {
  if [ -f "$scratch/pg/db/postmaster.pid" ]; then
    run_pg "$pgbin/pg_ctl -D $scratch/pg/db -m immediate stop" >/dev/null 2>&1 || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT
run_pg() { if [ "$(id -u)" -eq 0 ]; then su postgres -c "$1"; else bash -c "$1"; fi; }

swift build -c release --product engine-bench >/dev/null
.build/release/engine-bench --workflows "$workflows" --steps "$steps" --history-steps "$history_steps" \
  --scratch "$scratch" >"$scratch/capstan.txt"
cat "$scratch/capstan.txt"
capstan_rate=$(sed -n 's/^throughput: .*: \([0-9]*\) steps\/s$/\1/p' "$scratch/capstan.txt")

sqlite=$(python3 tools/engine-bench/dbos_bench.py --database-url "sqlite:///$scratch/dbos.sqlite" \
  --workflows "$dbos_workflows" --steps "$steps" --label dbos-sqlite | tail -1)
echo "$sqlite"

mkdir -p "$scratch/pg"
chmod 777 "$scratch/pg"
run_pg "$pgbin/initdb -D $scratch/pg/db -A trust -U postgres >$scratch/pg/initdb.log 2>&1"
run_pg "$pgbin/pg_ctl -D $scratch/pg/db -o '-c listen_addresses=127.0.0.1 -p $port -k $scratch/pg' -l $scratch/pg/log -w start >/dev/null"
postgres=$(python3 tools/engine-bench/dbos_bench.py --database-url "postgresql://postgres@127.0.0.1:$port/dbos_bench" \
  --workflows "$dbos_workflows" --steps "$steps" --label dbos-postgres | tail -1)
echo "$postgres"

rate() { echo "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["steps_per_second"])'; }
sqlite_rate=$(rate "$sqlite")
postgres_rate=$(rate "$postgres")
python3 - "$capstan_rate" "$sqlite_rate" "$postgres_rate" <<'PY'
import sys
capstan, sqlite, postgres = (float(v) for v in sys.argv[1:])
print(f"durable steps/s: capstan {capstan:.0f}, dbos+sqlite {sqlite:.1f} ({capstan / sqlite:.0f}x), dbos+postgres {postgres:.1f} ({capstan / postgres:.0f}x)")
PY
