//! Listing and importing a `MemoryStore`'s namespace: its [`Maintenance`]
//! implementation.
//!
//! The map keeps deadlines on the monotonic clock; entries carry absolute
//! Unix times, so both directions convert through the current instant of
//! each clock.

use async_trait::async_trait;

use super::MemoryStore;
use super::map::Namespace;
use crate::listing::{Entries, Entry, EntryCursor, ListOptions, importable};
use crate::{Maintenance, NamespacedStore, Result, StoreStats};

/// Entries a page holds, as the other backends page.
const PAGE: usize = 1000;

#[async_trait]
impl Maintenance for MemoryStore {
    fn stats(&self) -> StoreStats {
        MemoryStore::stats(self)
    }

    async fn delete_expired(&self) -> Result<usize> {
        Ok(MemoryStore::delete_expired(self).await)
    }

    /// Takes a snapshot of the namespace (and, with
    /// [`ListOptions::descendants`], of its subtree) when called, one shard
    /// lock at a time, and pages through it: namespaces in order of their
    /// path, keys in byte order.
    fn entries(&self, options: ListOptions) -> Entries {
        let mut entries = Vec::new();
        let namespaces = if options.descendants {
            self.ns.subtree()
        } else {
            vec![self.ns.clone()]
        };
        for ns in &namespaces {
            self.collect(ns, &options, &mut entries);
        }
        entries.sort_unstable_by(|a, b| (&a.namespace, &a.key).cmp(&(&b.namespace, &b.key)));
        Entries::new(Snapshot {
            entries: entries.into_iter(),
        })
    }

    async fn import_entries(&self, entries: Vec<Entry>) -> Result<usize> {
        let (unix, monotonic) = (self.clock.unix_millis(), self.clock.monotonic_millis());
        let mut written = 0;
        for entry in importable(entries, unix)? {
            // Live, so `at > unix`.
            let expires_at = entry
                .expires_at
                .map(|at| monotonic.saturating_add(at - unix));
            let store = (entry.namespace.iter())
                .fold(self.clone(), |store, name| store.with_namespace(name));
            store.set_one(&entry.key, entry.value.unwrap_or_default(), expires_at);
            written += 1;
        }
        Ok(written)
    }
}

impl MemoryStore {
    /// Appends the live entries of namespace `ns` that `options` select.
    fn collect(&self, ns: &Namespace, options: &ListOptions, out: &mut Vec<Entry>) {
        let namespace = ns.path[self.ns.path.len()..].to_vec();
        let (unix, monotonic) = (self.clock.unix_millis(), self.clock.monotonic_millis());
        for shard in self.root.shards.shards.iter() {
            let shard = shard.read();
            let Some(space) = shard.spaces.get(&ns.id) else {
                continue;
            };
            let live = (space.table.iter()).filter(|slot| {
                slot.is_live(monotonic) && slot.key.starts_with(&*options.key_prefix)
            });
            out.extend(live.map(|slot| {
                let mut listed = Entry::new(&*slot.key, slot.value.clone(), None);
                listed.namespace = namespace.clone();
                listed.expires_at = slot.expires_at.map(|at| unix + (at - monotonic));
                if !options.values {
                    listed.value = None;
                }
                listed
            }));
        }
    }
}

/// The listed entries, handed out a page at a time.
struct Snapshot {
    entries: std::vec::IntoIter<Entry>,
}

#[async_trait]
impl EntryCursor for Snapshot {
    async fn next_page(&mut self) -> Result<Option<Vec<Entry>>> {
        let page: Vec<Entry> = self.entries.by_ref().take(PAGE).collect();
        Ok((!page.is_empty()).then_some(page))
    }
}
