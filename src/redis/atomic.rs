//! `AtomicStore` and `BatchStore` for Redis and Valkey.
//!
//! - `increment` is one Lua script (`EVAL`): `INCRBY`, and `PEXPIRE` only if the key
//!   did not exist before — one server-side step, so no other client sees
//!   a counter without its expiry or can slip in between.
//! - `set_if_absent` is `SET key value NX [PX ms]`.
//! - `get_many` is `MGET`, `delete_many` one `UNLINK`, and `set_many` the
//!   `SET`s pipelined inside `MULTI`/`EXEC`: each one round trip, and the
//!   writes all or nothing. On a cluster the client splits `MGET` and
//!   `UNLINK` by slot itself, and `set_many` sends one `MULTI`/`EXEC` per
//!   slot, at once: all or nothing per slot, not across slots.
//!
//! Unlike the other commands, `increment` and `set_if_absent` are never
//! retried after a lost connection: the first attempt may have been applied
//! with only its reply lost, and a retry would count twice or report
//! `false` for the caller's own write. They are sent again only after a
//! reply proving they did not run (a cluster's `MOVED`, `ASK`, `TRYAGAIN`,
//! `CLUSTERDOWN`, `MASTERDOWN`), on a cluster connection whose client never
//! retries by itself (`client::Retry::Never`).

use std::time::Duration;

use ::redis::Cmd;
use async_trait::async_trait;
use bytes::Bytes;

use super::client::Retry;
use super::{MAX_TTL_MILLIS, RedisStore};
use crate::clock::opt_ttl_millis;
use crate::stats::Event;
use crate::{AtomicStore, BatchStore, Result};

/// `increment`: KEYS[1] the key, ARGV[1] the delta, ARGV[2] the expiry in
/// ms of a counter this creates (0: none). An `INCRBY` failure (not an
/// integer, another type) comes back as an error reply with the code
/// `NOTCOUNTER`, and an overflow as `OVERFLOW <value> <delta>`, so that
/// `client::map_error` can tell each from any other failure.
///
/// Sent whole with `EVAL` (the server caches it by its SHA1 all the same),
/// not by SHA1 with `EVALSHA`: a command that must not run twice is then
/// one plain command, which `client` can send again after an `ASK`
/// redirect (with `ASKING`) without a second step that could fail halfway.
const INCREMENT: &str = r"local created = redis.call('EXISTS', KEYS[1]) == 0
local n = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(n) == 'table' and n.err then
    if string.find(n.err, 'overflow', 1, true) then
        return redis.error_reply('OVERFLOW ' .. redis.call('GET', KEYS[1]) .. ' ' .. ARGV[1])
    end
    return redis.error_reply('NOTCOUNTER ' .. n.err)
end
if created and ARGV[2] ~= '0' then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n";

#[async_trait]
impl AtomicStore for RedisStore {
    async fn increment(&self, key: &str, delta: i64, expires_in: Option<Duration>) -> Result<i64> {
        let ttl = opt_ttl_millis(expires_in, "expires_in")?;
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(INCREMENT)
            .arg(1)
            .arg(self.key(key))
            .arg(delta)
            .arg(ttl.map_or(0, |ms| ms.min(MAX_TTL_MILLIS)));
        let new = self.shared.run(&cmd, "INCRBY", Retry::Never).await?;
        self.count(Event::Set, 1);
        Ok(new)
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: Bytes,
        expires_in: Option<Duration>,
    ) -> Result<bool> {
        let ttl = opt_ttl_millis(expires_in, "expires_in")?;
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.key(key)).arg(&value[..]).arg("NX");
        if let Some(ms) = ttl {
            cmd.arg("PX").arg(ms.min(MAX_TTL_MILLIS));
        }
        // "OK" when set, nil when the key exists.
        let reply: Option<String> = self.shared.run(&cmd, "SET NX", Retry::Never).await?;
        self.count(Event::Set, u64::from(reply.is_some()));
        Ok(reply.is_some())
    }
}

#[async_trait]
impl BatchStore for RedisStore {
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new()); // MGET needs at least one key.
        }
        let keys: Vec<String> = keys.iter().map(|key| self.key(key)).collect();
        let values: Vec<Option<Vec<u8>>> = (self.shared)
            .run(&Cmd::mget(keys), "MGET", Retry::IfLost)
            .await?;
        self.shared.stats.add_lookups(0, &values);
        Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        expires_in: Option<Duration>,
    ) -> Result<()> {
        let ttl = opt_ttl_millis(expires_in, "expires_in")?;
        if entries.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = entries.iter().map(|(key, _)| self.key(key)).collect();
        let groups = self.shared.by_slot(&keys);
        let pipelines = groups.into_iter().map(|group| {
            let mut pipe = ::redis::pipe();
            pipe.atomic();
            for i in group {
                let cmd = pipe.cmd("SET").arg(&keys[i]).arg(&entries[i].1[..]);
                if let Some(ms) = ttl {
                    cmd.arg("PX").arg(ms.min(MAX_TTL_MILLIS));
                }
                cmd.ignore();
            }
            pipe
        });
        // Its SETs are safe to apply twice.
        (self.shared)
            .run_all(pipelines.collect(), "MULTI/SET/EXEC")
            .await?;
        self.count(Event::Set, entries.len() as u64);
        Ok(())
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<()> {
        if keys.is_empty() {
            return Ok(()); // UNLINK needs at least one key.
        }
        let count = keys.len() as u64;
        let keys: Vec<String> = keys.iter().map(|key| self.key(key)).collect();
        (self.shared)
            .run::<()>(&Cmd::unlink(keys), "UNLINK", Retry::IfLost)
            .await?;
        self.count(Event::Delete, count);
        Ok(())
    }
}
