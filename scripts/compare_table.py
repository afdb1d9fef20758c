#!/usr/bin/env python3
"""Prints the markdown tables of scripts/compare.sh from its JSON lines.

    python3 scripts/compare_table.py target/compare/results.jsonl

Each (system, op, concurrency) may appear several times (one per round);
the tables give the median. The first table lists every figure; the second
checks the performance targets of the memory, FileStore and Redis/Valkey
issues, each ratio beside the two figures it came from; the third gives
issue 16's comparison with the peers and its targets, with the spread of
the ratio over the rounds; then the delete_expired latency probe and the
scaling figure when they ran. Standard library only.
"""

import json
import statistics
import sys
from collections import defaultdict

# Figures the issues quote for peers, used when the peer was not run here
# (scripts/compare.sh without --python).
QUOTED = {
    ("litestar-memory", "get_hit", 64): 200_000.0,
    ("diskcache", "get_hit", 1): 107_000.0,
}
# The same for issue 16, whose table quotes diskcache at 125,781 gets/s.
QUOTED_16 = {
    ("diskcache", "get_hit", 1): 125_781.0,
}


def load(path):
    """The workload's lines by (system, op, concurrency), the scaling
    example's (they carry `store_keys`) by (system, op, store_keys), and the
    latency probe's (op `delete_expired_latency`) by (system, phase)."""
    runs, scaling, latency = defaultdict(list), defaultdict(list), defaultdict(list)
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if r["op"] == "delete_expired_latency":
                latency[(r["system"], r["phase"])].append(r)
            elif "store_keys" in r:
                scaling[(r["system"], r["op"], r["store_keys"])].append(r)
            else:
                runs[(r["system"], r["op"], r["concurrency"])].append(r)
    return runs, scaling, latency


# Issue 16: (what, ours, reference, factor required or None when the row
# only repeats a figure of the issue's table). Ratio = ours / reference.
ISSUE_16 = [
    ("file get_hit c1 vs raw redb, a read transaction per get, 1 thread",
     ("kvstores-file", "get_hit", 1), ("redb-read-txn-per-get", "get_hit", 1), 0.5),
    ("file get_hit c1 vs SQLite WAL (prepared SELECT), 1 thread",
     ("kvstores-file", "get_hit", 1), ("sqlite-wal-normal", "get_hit", 1), 2),
    ("file get_hit c1 vs fjall, 1 thread",
     ("kvstores-file", "get_hit", 1), ("fjall", "get_hit", 1), None),
    ("file get_hit c1 vs python-diskcache get",
     ("kvstores-file", "get_hit", 1), ("diskcache", "get_hit", 1), 3),
    ("file get_hit c64 vs raw redb, each thread's reads in one transaction, 64 threads",
     ("kvstores-file", "get_hit", 64), ("redb-one-read-txn", "get_hit", 64), 0.5),
    ("file get_hit c64 vs fjall, 2 threads",
     ("kvstores-file", "get_hit", 64), ("fjall", "get_hit", 2), 1),
    ("file set c1 (durable) vs SQLite WAL synchronous=FULL, 1 thread",
     ("kvstores-file", "set", 1), ("sqlite-wal-full", "set", 1), 0.5),
    ("file --exclusive set c1 (durable) vs SQLite WAL synchronous=FULL, 1 thread",
     ("kvstores-file-exclusive", "set", 1), ("sqlite-wal-full", "set", 1), 1),
    ("file set c1 (durable) vs fjall persist(SyncAll), 1 thread",
     ("kvstores-file", "set", 1), ("fjall-durable", "set", 1), None),
    ("file set c1 (durable) vs raw redb one commit per set, 1 thread",
     ("kvstores-file", "set", 1), ("redb-one-commit-per-set", "set", 1), None),
    ("file set c64 (durable) vs raw redb one commit per set, 64 threads",
     ("kvstores-file", "set", 64), ("redb-one-commit-per-set", "set", 64), 20),
    ("file set c64 (durable) vs raw redb one commit per set, multi-writer, 64 threads",
     ("kvstores-file", "set", 64), ("redb-one-commit-per-set-multi-writer", "set", 64), None),
    ("file set c64 (durable) vs fjall persist(SyncAll), 64 threads",
     ("kvstores-file", "set", 64), ("fjall-durable", "set", 64), 5),
    ("file set c64 (durable) vs SQLite WAL synchronous=FULL, 64 threads",
     ("kvstores-file", "set", 64), ("sqlite-wal-full", "set", 64), None),
    ("memory get_hit c64 vs bare DashMap, 2 threads",
     ("kvstores-memory", "get_hit", 64), ("dashmap-bare", "get_hit", 2), 0.5),
    ("memory set c64 vs bare DashMap, 2 threads",
     ("kvstores-memory", "set", 64), ("dashmap-bare", "set", 2), 0.5),
    ("memory get_hit c64 vs moka future cache, 64 tasks",
     ("kvstores-memory", "get_hit", 64), ("moka-future", "get_hit", 64), 2),
    ("memory set c64 vs moka future cache, 64 tasks",
     ("kvstores-memory", "set", 64), ("moka-future", "set", 64), 2),
]


def print_issue_16(runs, rate):
    """Issue 16's table: each ratio from the medians, and its spread over
    the rounds (the ratio within each round, round i of both figures)."""
    print("\nIssue 16: kvstores beside the peers (ratio = ours / reference, from the medians; "
          "per round: the lowest and highest ratio within one round):\n")
    print("| figure | ours (ops/s) | reference (ops/s) | ratio | per round | required | met |")
    print("| --- | --: | --: | --: | --: | --: | --- |")
    for what, ours_key, peer_key, factor in ISSUE_16:
        required = "" if factor is None else f"{factor:g}"
        if ours_key in rate and peer_key not in rate and peer_key in QUOTED_16:
            ours, peer = rate[ours_key], QUOTED_16[peer_key]
            met = "" if factor is None else ("yes" if ours / peer >= factor else "NO")
            print(f"| {what} | {ours:,.0f} | {peer:,.0f} (quoted in the issue) | {ours / peer:.2f} "
                  f"| | {required} | {met} |")
            continue
        if ours_key not in rate or peer_key not in rate:
            missing = " and ".join(k[0] for k in (ours_key, peer_key) if k not in rate)
            print(f"| {what} | | | | | {required} | not measured ({missing} not run) |")
            continue
        ours, peer = rate[ours_key], rate[peer_key]
        rounds = [a["ops_per_s"] / b["ops_per_s"] for a, b in zip(runs[ours_key], runs[peer_key])]
        spread = f"{min(rounds):.2f}–{max(rounds):.2f}" if len(rounds) > 1 else ""
        met = "" if factor is None else ("yes" if ours / peer >= factor else "NO")
        print(f"| {what} | {ours:,.0f} | {peer:,.0f} | {ours / peer:.2f} | {spread} | {required} | {met} |")


def print_latency(latency):
    """The delete_expired latency probe: median over its runs of each quantile."""
    first = next(iter(latency.values()))
    any_run = first[0]
    print(f"\nLatency of concurrent get and set while delete_expired removes "
          f"{any_run['expired']:,} expired among {any_run['store_keys']:,} keys "
          f"(examples/expiry_latency.rs, {any_run['readers']} reader and {any_run['writers']} "
          f"writer tasks; idle: the second before, no purge; median of {len(first)} runs):\n")
    print("| system | phase | purge (ms) | gets | get p50 (ms) | get p99 (ms) | get max (ms) "
          "| sets | set p50 (ms) | set p99 (ms) | set max (ms) |")
    print("| --- | --- |" + " --: |" * 9)
    for (system, phase), rows in latency.items():
        def med(field, rows=rows):
            return statistics.median(r[field] for r in rows)
        purge = f"{med('secs') * 1000:.0f}" if phase == "purge" else ""
        print(f"| {system} | {phase} | {purge} | {med('get_ops'):,.0f} | {med('get_p50_ms'):.2f} | "
              f"{med('get_p99_ms'):.2f} | {med('get_max_ms'):.1f} | {med('set_ops'):,.0f} | "
              f"{med('set_p50_ms'):.2f} | {med('set_p99_ms'):.2f} | {med('set_max_ms'):.1f} |")
    key = ("kvstores-file", "purge")
    if key in latency:
        rows = latency[key]
        get99 = statistics.median(r["get_p99_ms"] for r in rows)
        set99 = statistics.median(r["set_p99_ms"] for r in rows)
        print(f"\nIssue 16's targets for FileStore: get p99 {get99:.2f} ms (<= 5: "
              f"{'yes' if get99 <= 5 else 'NO'}), set p99 {set99:.2f} ms (<= 50: "
              f"{'yes' if set99 <= 50 else 'NO'}).")


def print_scaling(scaling):
    """Time to remove the same number of entries from stores of each size."""
    sizes = sorted({k[2] for k in scaling})
    removed = next(iter(scaling.values()))[0]["ops"]
    print(f"\nRemoving {removed:,} entries (examples/scaling.rs; median of its runs):\n")
    print("| system | op | " + " | ".join(f"{n:,} keys" for n in sizes)
          + f" | {sizes[-1]:,} / {sizes[0]:,} |")
    print("| --- | --- |" + " --: |" * (len(sizes) + 1))
    for system, op in dict.fromkeys((k[0], k[1]) for k in scaling):
        ms = [statistics.median(r["secs"] for r in scaling[(system, op, n)]) * 1000
              if (system, op, n) in scaling else None for n in sizes]
        cells = [f"{m:.1f} ms" if m is not None else "" for m in ms]
        growth = f"{ms[-1] / ms[0]:.1f}x" if ms[0] and ms[-1] else ""
        print(f"| {system} | {op} | " + " | ".join(cells) + f" | {growth} |")


def main(path):
    runs, scaling, latency = load(path)
    rate = {k: statistics.median(r["ops_per_s"] for r in v) for k, v in runs.items()}
    secs = {k: statistics.median(r["secs"] for r in v) for k, v in runs.items()}
    count = {k: len(v) for k, v in runs.items()}

    # Every figure: one row per system and op, one column per concurrency.
    systems = list(dict.fromkeys(k[0] for k in runs))
    concurrencies = sorted({k[2] for k in runs})
    print("| system | op | " + " | ".join(f"c={c} ops/s" for c in concurrencies) + " |")
    print("| --- | --- |" + " --: |" * len(concurrencies))
    for system in systems:
        ops = list(dict.fromkeys(k[1] for k in runs if k[0] == system))
        for op in ops:
            cells = []
            for c in concurrencies:
                k = (system, op, c)
                if k not in rate:
                    cells.append("")
                elif op == "delete_expired":
                    cells.append(f"{secs[k] * 1000:.1f} ms ({runs[k][0]['ops']} keys)")
                else:
                    cells.append(f"{rate[k]:,.0f}")
            print(f"| {system} | {op} | " + " | ".join(cells) + " |")
    n = max(count.values()) if count else 0
    print(f"\nMedian of {n} runs per cell (ops/s; delete_expired: time of the one call).\n")

    def figure(key):
        if key in rate:
            return rate[key], f"{rate[key]:,.0f}"
        if key in QUOTED:
            return QUOTED[key], f"{QUOTED[key]:,.0f} (quoted in the issue)"
        return None, "not run"

    # The targets: (what, ours, peer, factor required), ratio = ours / peer.
    targets = [
        ("memory get_hit c64 >= 20x Litestar MemoryStore",
         ("kvstores-memory", "get_hit", 64), ("litestar-memory", "get_hit", 64), 20),
        ("memory get_hit c64 >= 1/4 of bare DashMap on 2 threads",
         ("kvstores-memory", "get_hit", 64), ("dashmap-bare", "get_hit", 2), 0.25),
        ("file set c64 (durable) >= 20x redb one commit per set c64",
         ("kvstores-file", "set", 64), ("redb-one-commit-per-set", "set", 64), 20),
        ("file set c64 (durable) >= 20x redb one commit per set c64, multi-writer",
         ("kvstores-file", "set", 64), ("redb-one-commit-per-set-multi-writer", "set", 64), 20),
        ("file set c64 (durable) >= 10x diskcache set",
         ("kvstores-file", "set", 64), ("diskcache", "set", 1), 10),
        ("file get_hit c64 >= 5x diskcache get",
         ("kvstores-file", "get_hit", 64), ("diskcache", "get_hit", 1), 5),
        ("file get_hit c64 >= 50x Litestar FileStore get_hit c64",
         ("kvstores-file", "get_hit", 64), ("litestar-file", "get_hit", 64), 50),
    ]
    for server in ("redis", "valkey"):
        for op in ("set", "get_hit"):
            targets.append((f"{server} {op} c64 >= 1.5x redis-benchmark -c 64",
                            (f"kvstores-{server}", op, 64), (f"redis-benchmark-{server}", op, 64), 1.5))
            targets.append((f"{server} {op} c64 >= 5x Litestar RedisStore c64",
                            (f"kvstores-{server}", op, 64), ("litestar-redis", op, 64), 5))
            targets.append((f"{server} {op} c1 >= 70% of redis-benchmark -c 1",
                            (f"kvstores-{server}", op, 1), (f"redis-benchmark-{server}", op, 1), 0.7))

    print("| target | ours (ops/s) | reference (ops/s) | ratio | required | met |")
    print("| --- | --: | --: | --: | --: | --- |")
    absolute = ("kvstores-memory", "get_hit", 64)
    if absolute in rate:
        ok = rate[absolute] >= 4_000_000
        print(f"| memory get_hit c64 >= 4,000,000 ops/s | {rate[absolute]:,.0f} | 4,000,000 | "
              f"{rate[absolute] / 4e6:.2f} | 1 | {'yes' if ok else 'NO'} |")
    for what, ours_key, peer_key, factor in targets:
        ours, ours_text = figure(ours_key)
        peer, peer_text = figure(peer_key)
        if ours is None or peer is None:
            print(f"| {what} | {ours_text} | {peer_text} | | {factor:g} | not measured |")
            continue
        ratio = ours / peer
        print(f"| {what} | {ours_text} | {peer_text} | {ratio:.2f} | {factor:g} | "
              f"{'yes' if ratio >= factor else 'NO'} |")
    key = ("kvstores-file", "delete_expired", 64)
    key = key if key in secs else ("kvstores-file", "delete_expired", 1)
    if key in secs:
        ms = secs[key] * 1000
        print(f"| file delete_expired of {runs[key][0]['ops'] // 2:,} among {runs[key][0]['ops']:,} "
              f"keys < 50 ms | {ms:.1f} ms | 50 ms | {ms / 50:.2f} | <= 1 | "
              f"{'yes' if ms < 50 else 'NO'} |")
    print_issue_16(runs, rate)
    if latency:
        print_latency(latency)
    if scaling:
        print_scaling(scaling)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: compare_table.py RESULTS.jsonl")
    main(sys.argv[1])
