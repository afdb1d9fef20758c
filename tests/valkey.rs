//! ValkeyStore against a real `valkey-server`: the behaviour suite, then
//! what only a server-backed store does.
#![cfg(feature = "valkey")]

mod server_suite;
mod suite;
mod support;

use kvstores::ValkeyStore;

contract_suite!(async { support::fresh::<ValkeyStore>().await });
server_suite!(ValkeyStore);
