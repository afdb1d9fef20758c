//! `AtomicStore` and `BatchStore` for Redis and Valkey.
//!
//! - `increment` is one Lua script: `INCRBY`, and `PEXPIRE` only if the key
//!   did not exist before — one server-side step, so no other client sees
//!   a counter without its expiry or can slip in between.
//! - `set_if_absent` is `SET key value NX [PX ms]`.
//! - `get_many` is `MGET`, `delete_many` one `UNLINK`, and `set_many` the
//!   `SET`s pipelined inside `MULTI`/`EXEC`: each one round trip, and the
//!   writes all or nothing.
//!
//! Unlike the other commands, `increment` and `set_if_absent` are never
//! retried after a lost connection: the first attempt may have been applied
//! with only its reply lost, and a retry would count twice or report
//! `false` for the caller's own write.

use std::sync::LazyLock;
use std::time::Duration;

use ::redis::{Cmd, FromRedisValue, Pipeline, RedisError, Script};
use async_trait::async_trait;
use bytes::Bytes;

use super::{Core, MAX_TTL_MILLIS, ServerKind, ServerStore, connection_lost, map_error};
use crate::clock::opt_ttl_millis;
use crate::ext::not_a_counter;
use crate::stats::Event;
use crate::{AtomicStore, BatchStore, Error, Result};

/// `increment`: KEYS[1] the key, ARGV[1] the delta, ARGV[2] the expiry in
/// ms of a counter this creates (0: none). An `INCRBY` failure (not an
/// integer, another type) comes back as an error reply with the code
/// `NOTCOUNTER`, and an overflow as `OVERFLOW <current value>`, so that
/// each can be told from any other failure.
static INCREMENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local created = redis.call('EXISTS', KEYS[1]) == 0
local n = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(n) == 'table' and n.err then
    if string.find(n.err, 'overflow', 1, true) then
        return redis.error_reply('OVERFLOW ' .. redis.call('GET', KEYS[1]))
    end
    return redis.error_reply('NOTCOUNTER ' .. n.err)
end
if created and ARGV[2] ~= '0' then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n",
    )
});

impl Core {
    /// Runs `cmd` once, never retrying: for commands that must not be
    /// applied twice.
    async fn query_once<T: FromRedisValue>(&self, cmd: &Cmd, action: &str) -> Result<T> {
        let mut connection = self.shared.connection.clone();
        cmd.query_async(&mut connection)
            .await
            .map_err(|err| map_error(&self.shared.server, action, err))
    }

    async fn increment(&self, key: &str, delta: i64, expires_in: Option<Duration>) -> Result<i64> {
        let ttl = opt_ttl_millis(expires_in, "expires_in")?;
        let mut connection = self.shared.connection.clone();
        let mut invocation = INCREMENT.key(self.key(key));
        invocation
            .arg(delta)
            .arg(ttl.map_or(0, |ms| ms.min(MAX_TTL_MILLIS)));
        let new = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|err: RedisError| {
                let overflowed = (err.code() == Some("OVERFLOW"))
                    .then(|| err.detail()?.trim().parse::<i64>().ok())
                    .flatten();
                if let Some(value) = overflowed {
                    Error::CounterOverflow { value, delta }
                } else if err.code() == Some("NOTCOUNTER") {
                    not_a_counter()
                } else {
                    map_error(&self.shared.server, "INCRBY", err)
                }
            })?;
        self.count(Event::Set, 1);
        Ok(new)
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        expires_in: Option<Duration>,
    ) -> Result<bool> {
        let ttl = opt_ttl_millis(expires_in, "expires_in")?;
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value).arg("NX");
        if let Some(ms) = ttl {
            cmd.arg("PX").arg(ms.min(MAX_TTL_MILLIS));
        }
        // "OK" when set, nil when the key exists.
        let reply: Option<String> = self.query_once(&cmd, "SET NX").await?;
        self.count(Event::Set, u64::from(reply.is_some()));
        Ok(reply.is_some())
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new()); // MGET needs at least one key.
        }
        let keys: Vec<String> = keys.iter().map(|key| self.key(key)).collect();
        let values: Vec<Option<Vec<u8>>> =
            self.query(::redis::cmd("MGET").arg(keys), "MGET").await?;
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
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        for (key, value) in entries {
            let cmd = pipe.cmd("SET").arg(self.key(key)).arg(&value[..]);
            if let Some(ms) = ttl {
                cmd.arg("PX").arg(ms.min(MAX_TTL_MILLIS));
            }
            cmd.ignore();
        }
        self.query_pipe(&pipe, "MULTI/SET/EXEC").await?;
        self.count(Event::Set, entries.len() as u64);
        Ok(())
    }

    async fn delete_many(&self, keys: &[&str]) -> Result<()> {
        if keys.is_empty() {
            return Ok(()); // UNLINK needs at least one key.
        }
        let count = keys.len() as u64;
        let keys: Vec<String> = keys.iter().map(|key| self.key(key)).collect();
        self.query::<()>(::redis::cmd("UNLINK").arg(keys), "UNLINK")
            .await?;
        self.count(Event::Delete, count);
        Ok(())
    }

    /// Runs `pipe` as one round trip, retried once after a lost connection
    /// like [`Core::query`]: its `SET`s are safe to apply twice.
    async fn query_pipe(&self, pipe: &Pipeline, action: &str) -> Result<()> {
        let mut connection = self.shared.connection.clone();
        let mut result = pipe.query_async::<()>(&mut connection).await;
        if connection_lost(&result) {
            result = pipe.query_async(&mut connection).await;
        }
        result.map_err(|err| map_error(&self.shared.server, action, err))
    }
}

#[async_trait]
impl<K: ServerKind> AtomicStore for ServerStore<K> {
    async fn increment(&self, key: &str, delta: i64, expires_in: Option<Duration>) -> Result<i64> {
        self.core.increment(key, delta, expires_in).await
    }
    async fn set_if_absent(
        &self,
        key: &str,
        value: Bytes,
        expires_in: Option<Duration>,
    ) -> Result<bool> {
        self.core.set_if_absent(key, &value, expires_in).await
    }
}

#[async_trait]
impl<K: ServerKind> BatchStore for ServerStore<K> {
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        self.core.get_many(keys).await
    }
    async fn set_many(
        &self,
        entries: &[(&str, Bytes)],
        expires_in: Option<Duration>,
    ) -> Result<()> {
        self.core.set_many(entries, expires_in).await
    }
    async fn delete_many(&self, keys: &[&str]) -> Result<()> {
        self.core.delete_many(keys).await
    }
}
