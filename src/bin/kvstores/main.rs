//! The `kvstores` command (being written).
fn main() {}
