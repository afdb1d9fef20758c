"""The standard workload (shared BENCH.md) on the Python stores people know,
printing the same JSON lines as examples/workload.rs so that they line up.

    target/python-peers/bin/python scripts/python_peers.py \
        [--ops 20000] [--value-size 100] [--redis-url redis://127.0.0.1:PORT]

scripts/compare.sh --python installs litestar, redis and diskcache into that
virtualenv and runs this against its own redis-server.

Systems: `litestar-memory`, `litestar-file` (a temporary directory) and
`litestar-redis` (only with --redis-url): `set` and `get_hit` at concurrency 1
and 64, C asyncio tasks sharing the N operations on one store, the store
emptied before each op. `diskcache`: python-diskcache's `Cache` (a temporary
directory), its synchronous `set` and `get` on one thread, reported at
concurrency 1. N distinct keys `key-{i}`, random values of --value-size bytes;
only the operations are timed, and every get is checked.
"""

import argparse
import asyncio
import json
import os
import tempfile
import time


def line(system, op, concurrency, ops, value_size, secs):
    print(json.dumps({
        "system": system, "op": op, "concurrency": concurrency, "ops": ops,
        "value_size": value_size, "secs": round(secs, 6),
        "ops_per_s": round(ops / secs, 1),
    }, separators=(",", ":")), flush=True)


async def run_store(system, store, keys, values, concurrencies):
    n, size = len(keys), len(values[0])
    for c in concurrencies:
        for op in ("set", "get_hit"):
            await store.delete_all()
            if op == "get_hit":
                for key, value in zip(keys, values):
                    await store.set(key, value)

            async def task(t):
                for i in range(t, n, c):
                    if op == "set":
                        await store.set(keys[i], values[i])
                    elif await store.get(keys[i]) is None:
                        raise RuntimeError(f"{system}: get of {keys[i]} missed")

            start = time.perf_counter()
            await asyncio.gather(*(task(t) for t in range(c)))
            line(system, op, c, n, size, time.perf_counter() - start)
    await store.delete_all()


def run_diskcache(directory, keys, values):
    import diskcache

    n, size = len(keys), len(values[0])
    with diskcache.Cache(directory) as cache:
        start = time.perf_counter()
        for key, value in zip(keys, values):
            cache.set(key, value)
        line("diskcache", "set", 1, n, size, time.perf_counter() - start)
        start = time.perf_counter()
        for key in keys:
            if cache.get(key) is None:
                raise RuntimeError(f"diskcache: get of {key} missed")
        line("diskcache", "get_hit", 1, n, size, time.perf_counter() - start)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--concurrency", default="1,64")
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]

    from litestar.stores.file import FileStore
    from litestar.stores.memory import MemoryStore
    from litestar.stores.redis import RedisStore

    keys = [f"key-{i}" for i in range(args.ops)]
    values = [os.urandom(args.value_size) for _ in range(args.ops)]

    await run_store("litestar-memory", MemoryStore(), keys, values, concurrencies)
    with tempfile.TemporaryDirectory() as directory:
        await run_store("litestar-file", FileStore(directory), keys, values, concurrencies)
    if args.redis_url:
        store = RedisStore.with_client(url=args.redis_url, namespace="python-peers")
        async with store:
            await run_store("litestar-redis", store, keys, values, concurrencies)
    with tempfile.TemporaryDirectory() as directory:
        run_diskcache(directory, keys, values)


if __name__ == "__main__":
    asyncio.run(main())
