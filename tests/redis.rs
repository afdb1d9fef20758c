//! RedisStore against a real `redis-server` and a real `valkey-server`: the
//! behaviour suite, then what only a server-backed store does, once per
//! server kind.
#![cfg(feature = "redis")]

mod server_suite;
mod suite;
mod support;

mod redis_server {
    use crate::suite;
    use crate::support::{self, Kind};

    crate::contract_suite!(async { support::fresh(Kind::Redis).await });
    crate::server_suite!(Kind::Redis);
}

mod valkey_server {
    use crate::suite;
    use crate::support::{self, Kind};

    crate::contract_suite!(async { support::fresh(Kind::Valkey).await });
    crate::server_suite!(Kind::Valkey);
}
