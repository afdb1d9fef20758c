//! The hit ratio of a bounded `MemoryStore` (CLOCK eviction) on a skewed
//! workload, beside exact LRU's on the same requests.
//!
//! ```text
//! cargo run --release --example zipf_hit_ratio -- [--keys 100000] [--capacity 10000] \
//!     [--requests 1000000] [--exponent 1.0] [--namespaces 1]
//! ```
//!
//! Each request reads a key drawn from a Zipf distribution over `--keys`
//! keys (rank r has weight 1 / r^exponent) and, on a miss, writes it, as a
//! read-through cache does. The store is bounded to `--capacity` entries.
//! The draws come from a fixed-seed generator, so runs are reproducible.
//! With `--namespaces N` the key of rank r lives in namespace `r % N` of one
//! root, so the bound and the eviction must work across namespaces.

use std::collections::{BTreeMap, HashMap};

use kvstores::{Bytes, MemoryStore, NamespacedStore, Store};

fn main() {
    let mut keys = 100_000usize;
    let mut capacity = 10_000usize;
    let mut requests = 1_000_000usize;
    let mut exponent = 1.0f64;
    let mut namespaces = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().expect("every flag takes a value");
        match flag.as_str() {
            "--keys" => keys = value.parse().expect("--keys"),
            "--capacity" => capacity = value.parse().expect("--capacity"),
            "--requests" => requests = value.parse().expect("--requests"),
            "--exponent" => exponent = value.parse().expect("--exponent"),
            "--namespaces" => namespaces = value.parse().expect("--namespaces"),
            other => panic!("unknown flag {other}"),
        }
    }
    let draws = zipf_draws(keys, exponent, requests);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let store = MemoryStore::builder().max_entries(capacity).build();
    let spaces: Vec<MemoryStore> = match namespaces {
        1 => vec![store.clone()],
        n => (0..n)
            .map(|i| store.with_namespace(&i.to_string()))
            .collect(),
    };
    let hits = runtime.block_on(async {
        let mut hits = 0usize;
        for &rank in &draws {
            let key = rank.to_string();
            let store = &spaces[rank % namespaces];
            if store.get(&key, None).await.unwrap().is_some() {
                hits += 1;
            } else {
                store.set(&key, Bytes::new(), None).await.unwrap();
            }
        }
        hits
    });
    let lru_hits = exact_lru_hits(&draws, capacity);
    let ratio = |h: usize| h as f64 / requests as f64;
    println!(
        "{{\"keys\":{keys},\"capacity\":{capacity},\"requests\":{requests},\"exponent\":{exponent},\
         \"namespaces\":{namespaces},\"hit_ratio\":{:.4},\"exact_lru_hit_ratio\":{:.4},\"evictions\":{}}}",
        ratio(hits),
        ratio(lru_hits),
        store.stats().evictions
    );
}

/// `n` ranks in `0..keys` drawn from Zipf(`exponent`) by inverting the CDF.
fn zipf_draws(keys: usize, exponent: f64, n: usize) -> Vec<usize> {
    let mut cdf = Vec::with_capacity(keys);
    let mut total = 0.0;
    for rank in 1..=keys {
        total += 1.0 / (rank as f64).powf(exponent);
        cdf.push(total);
    }
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    (0..n)
        .map(|_| {
            // xorshift64*: reproducible, and no dependency for this.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let unit =
                (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
            cdf.partition_point(|&c| c < unit * total).min(keys - 1)
        })
        .collect()
}

/// Hits of an exact LRU cache of `capacity` entries on `draws`.
fn exact_lru_hits(draws: &[usize], capacity: usize) -> usize {
    let mut last_use: HashMap<usize, u64> = HashMap::new();
    let mut by_age: BTreeMap<u64, usize> = BTreeMap::new();
    let mut hits = 0;
    for (tick, &key) in draws.iter().enumerate() {
        let tick = tick as u64;
        if let Some(old) = last_use.insert(key, tick) {
            by_age.remove(&old);
            hits += 1;
        } else if last_use.len() > capacity
            && let Some((_, oldest)) = by_age.pop_first()
        {
            last_use.remove(&oldest);
        }
        by_age.insert(tick, key);
    }
    hits
}
