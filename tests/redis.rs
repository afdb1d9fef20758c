//! RedisStore against a real `redis-server`: the behaviour suite, then what
//! only a server-backed store does.
#![cfg(feature = "redis")]

mod server_suite;
mod suite;
mod support;

use kvstores::RedisStore;

contract_suite!(async { support::fresh::<RedisStore>().await });
server_suite!(RedisStore);
