//! Local clusters of real `redis-server` or `valkey-server` processes on
//! free loopback ports: every node started with `--cluster-enabled yes` and
//! an explicit `--cluster-port` (the default, port + 10000, can overflow),
//! slots spread over the primaries with `CLUSTER ADDSLOTSRANGE`, nodes
//! joined with `CLUSTER MEET`, replicas attached with `CLUSTER REPLICATE`,
//! and the cluster used only once every node says `cluster_state:ok`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::servers::{Kind, Server, free_port};

/// Slots of a cluster.
const SLOTS: u16 = 16384;

pub struct Cluster {
    /// The primaries first, then the replicas (replica `i` of primary `p` at
    /// `primaries + p * replicas + i`).
    pub nodes: Vec<Server>,
    pub primaries: usize,
    /// Each node's `(cluster port)`, in `nodes` order.
    bus_ports: Vec<u16>,
}

impl Cluster {
    /// The 3-primary cluster of `kind` that this test binary's tests share.
    pub fn shared(kind: Kind) -> &'static Cluster {
        static REDIS: OnceLock<Cluster> = OnceLock::new();
        static VALKEY: OnceLock<Cluster> = OnceLock::new();
        let cell = match kind {
            Kind::Redis => &REDIS,
            Kind::Valkey => &VALKEY,
        };
        cell.get_or_init(|| Cluster::start(kind, 3, 0))
    }

    /// Starts `primaries` primaries with `replicas` replicas each.
    pub fn start(kind: Kind, primaries: usize, replicas: usize) -> Cluster {
        let total = primaries * (1 + replicas);
        let mut nodes = Vec::with_capacity(total);
        let mut bus_ports = Vec::with_capacity(total);
        for _ in 0..total {
            let bus = free_port();
            nodes.push(Server::start_with(kind, None, |_| {
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus.to_string(),
                    "--cluster-config-file",
                    "nodes.conf",
                    // A failed primary is replaced within about 2 s.
                    "--cluster-node-timeout",
                    "1000",
                    "--cluster-replica-validity-factor",
                    "0",
                    // The other primaries keep serving while one is down.
                    "--cluster-require-full-coverage",
                    "no",
                ]
                .map(str::to_owned)
                .to_vec()
            }));
            bus_ports.push(bus);
        }
        let cluster = Cluster {
            nodes,
            primaries,
            bus_ports,
        };
        cluster.assemble(replicas);
        cluster
    }

    fn assemble(&self, replicas: usize) {
        for p in 0..self.primaries {
            let slots = slots_of(p, self.primaries);
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(slots.start())
                .arg(slots.end())
                .query(&mut self.nodes[p].sync())
                .expect("CLUSTER ADDSLOTSRANGE");
        }
        for node in &self.nodes[1..] {
            let _: () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(self.nodes[0].port())
                .arg(self.bus_ports[0])
                .query(&mut node.sync())
                .expect("CLUSTER MEET");
        }
        self.wait("every node to know every other", |node| {
            let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(node).unwrap();
            nodes.lines().count() == self.nodes.len()
        });
        for p in 0..self.primaries {
            let id = self.id(p);
            for r in 0..replicas {
                let replica = &self.nodes[self.primaries + p * replicas + r];
                let _: () = redis::cmd("CLUSTER")
                    .arg("REPLICATE")
                    .arg(&id)
                    .query(&mut replica.sync())
                    .expect("CLUSTER REPLICATE");
            }
        }
        self.wait("cluster_state:ok on every node", |node| {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query(node).unwrap();
            info.contains("cluster_state:ok")
        });
        if replicas > 0 {
            self.wait("every replica in sync", |node| {
                let info: String = redis::cmd("INFO").arg("replication").query(node).unwrap();
                !info.contains("role:slave") || info.contains("master_link_status:up")
            });
        }
    }

    /// Waits up to 30 s until `done` holds on every running node.
    pub fn wait(&self, what: &str, done: impl Fn(&mut redis::Connection) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let all = (self.nodes.iter())
                .filter(|node| node.pid().is_some())
                .all(|node| done(&mut node.sync()));
            if all {
                return;
            }
            assert!(Instant::now() < deadline, "waited 30 s for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The node id of `nodes[i]`.
    pub fn id(&self, i: usize) -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.nodes[i].sync())
            .unwrap()
    }

    /// Seed URLs: the first two nodes, in the kind's scheme.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes[..2].iter().map(Server::url).collect()
    }

    /// The primary `i`'s address, as `host:port`.
    pub fn address(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[i].port())
    }
}

/// The cluster slot of a stored key (CRC16/XMODEM of the key, or of its
/// `{hash tag}`, modulo 16384), as the servers compute it.
pub fn slot(key: &str) -> u16 {
    let mut bytes = key.as_bytes();
    if let Some(open) = bytes.iter().position(|&b| b == b'{')
        && let Some(len) = bytes[open + 1..].iter().position(|&b| b == b'}')
        && len > 0
    {
        bytes = &bytes[open + 1..open + 1 + len];
    }
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % SLOTS
}

/// The slots `ADDSLOTSRANGE` gave primary `p` of `primaries`.
pub fn slots_of(p: usize, primaries: usize) -> std::ops::RangeInclusive<u16> {
    let per = SLOTS / primaries as u16;
    let first = p as u16 * per;
    let last = if p + 1 == primaries {
        SLOTS - 1
    } else {
        first + per - 1
    };
    first..=last
}
