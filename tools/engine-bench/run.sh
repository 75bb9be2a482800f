#!/usr/bin/env bash
# Runs the engine benchmark and its DBOS peers in one go and prints the ratios.
#   tools/engine-bench/run.sh [capstan concurrencies (10000,100)] [dbos workflows (100)] [recovery counts (1000,10000,100000)]
# Needs: a release build of engine-bench, `pip install dbos`, Debian's postgresql (a
# throwaway server is started on 127.0.0.1 in a temp dir, as user postgres when run as root).
# Capstan's throughput runs 5 rounds per concurrency and DBOS 3 per database; medians are compared
# at equal concurrency (the DBOS count). Run it under `flock /tmp/bench.lock` on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
workflows=${1:-10000,100}
dbos_workflows=${2:-100}
recovery=${3:-1000,10000,100000}
steps=10
dbos_rounds=3
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
median() { python3 -c 'import sys; v=sorted(float(x) for x in sys.argv[1:]); print(v[len(v)//2])' "$@"; }

echo "load average at start: $(cat /proc/loadavg)"
swift build -c release --product engine-bench >/dev/null
.build/release/engine-bench --workflows "$workflows" --steps "$steps" --recovery-workflows "$recovery" \
  --scratch "$scratch" | tee "$scratch/capstan.txt"
capstan_equal=$(sed -n "s/^throughput median: $dbos_workflows workflows: \([0-9]*\) steps\/s.*/\1/p" "$scratch/capstan.txt")
echo "load average after capstan: $(cat /proc/loadavg)"

rate() { echo "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["steps_per_second"])'; }
sqlite_rates=()
for round in $(seq $dbos_rounds); do
  line=$(python3 tools/engine-bench/dbos_bench.py --database-url "sqlite:///$scratch/dbos-$round.sqlite" \
    --workflows "$dbos_workflows" --steps "$steps" --label dbos-sqlite | tail -1)
  echo "$line"
  sqlite_rates+=("$(rate "$line")")
done

mkdir -p "$scratch/pg"
chmod 777 "$scratch/pg"
run_pg "$pgbin/initdb -D $scratch/pg/db -A trust -U postgres >$scratch/pg/initdb.log 2>&1"
run_pg "$pgbin/pg_ctl -D $scratch/pg/db -o '-c listen_addresses=127.0.0.1 -p $port -k $scratch/pg' -l $scratch/pg/log -w start >/dev/null"
postgres_rates=()
for round in $(seq $dbos_rounds); do
  line=$(python3 tools/engine-bench/dbos_bench.py --database-url "postgresql://postgres@127.0.0.1:$port/dbos_bench_$round" \
    --workflows "$dbos_workflows" --steps "$steps" --label dbos-postgres | tail -1)
  echo "$line"
  postgres_rates+=("$(rate "$line")")
done
echo "load average at end: $(cat /proc/loadavg)"

sqlite_rate=$(median "${sqlite_rates[@]}")
postgres_rate=$(median "${postgres_rates[@]}")
python3 - "$dbos_workflows" "$capstan_equal" "$sqlite_rate" "$postgres_rate" <<'PY'
import sys
concurrency = sys.argv[1]
capstan, sqlite, postgres = (float(v) for v in sys.argv[2:])
print(f"durable steps/s at {concurrency} concurrent workflows (medians): capstan {capstan:.0f}, dbos+sqlite {sqlite:.1f} ({capstan / sqlite:.0f}x), dbos+postgres {postgres:.1f} ({capstan / postgres:.0f}x)")
PY
