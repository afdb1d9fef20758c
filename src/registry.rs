//! [`StoreRegistry`]: named stores handed out on demand.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use crate::{Error, Result, Store};

type Factory = dyn Fn(&str) -> Arc<dyn Store> + Send + Sync;
/// A name's slot: filled once, by `register` or by the factory.
type Slot = Arc<OnceLock<Arc<dyn Store>>>;

/// A set of named stores that creates each unknown name's store on first use.
///
/// Give each part of an application its own name (`"sessions"`,
/// `"response-cache"`, `"rate-limits"`) and let the default factory decide
/// where they live: a typical factory returns namespaces of one root store.
///
/// The registry is `Send + Sync`; share it behind an `Arc` or a `&'static`.
/// The factory runs at most once per name, even when many threads ask for the
/// same new name at once, and every [`get`](StoreRegistry::get) of a name
/// returns the same `Arc`.
///
/// # Example
///
/// ```
/// use kvstores::{MemoryStore, NamespacedStore, StoreRegistry};
/// use std::sync::Arc;
///
/// let root = MemoryStore::new();
/// let registry = StoreRegistry::with_default_factory(move |name| root.with_namespace(name));
/// let sessions = registry.get("sessions");
/// assert!(Arc::ptr_eq(&sessions, &registry.get("sessions")));
/// ```
pub struct StoreRegistry {
    /// Each name maps to a cell that is filled once, outside the map's lock,
    /// so a slow factory for one name blocks only callers of that name.
    stores: RwLock<HashMap<String, Slot>>,
    factory: Box<Factory>,
}

impl StoreRegistry {
    /// Creates a registry whose default factory makes a new, independent
    /// [`MemoryStore`](crate::MemoryStore) for each name.
    #[cfg(feature = "memory")]
    #[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
    pub fn new() -> Self {
        Self::with_default_factory(|_| crate::MemoryStore::new())
    }

    /// Creates a registry that calls `factory` with the name of each store
    /// asked for that was not registered before.
    pub fn with_default_factory<S, F>(factory: F) -> Self
    where
        S: Store + 'static,
        F: Fn(&str) -> S + Send + Sync + 'static,
    {
        StoreRegistry {
            stores: RwLock::default(),
            factory: Box::new(move |name| Arc::new(factory(name))),
        }
    }

    /// Registers `store` under `name`.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyRegistered`] if `name` is taken (by `register` or by a
    /// `get` that created it) and `allow_override` is `false`; the registered
    /// store is kept.
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::{Error, MemoryStore, StoreRegistry};
    ///
    /// let registry = StoreRegistry::new();
    /// registry.register("cache", MemoryStore::new(), false)?;
    /// assert!(matches!(
    ///     registry.register("cache", MemoryStore::new(), false),
    ///     Err(Error::AlreadyRegistered { .. })
    /// ));
    /// registry.register("cache", MemoryStore::new(), true)?;
    /// # Ok::<(), kvstores::Error>(())
    /// ```
    pub fn register(
        &self,
        name: &str,
        store: impl Store + 'static,
        allow_override: bool,
    ) -> Result<()> {
        let cell = Arc::new(OnceLock::from(Arc::new(store) as Arc<dyn Store>));
        let mut stores = self.stores.write().unwrap_or_else(PoisonError::into_inner);
        // A name whose factory has not finished (or panicked) is not taken.
        let taken = stores.get(name).is_some_and(|cell| cell.get().is_some());
        if taken && !allow_override {
            return Err(Error::AlreadyRegistered {
                name: name.to_owned(),
            });
        }
        stores.insert(name.to_owned(), cell);
        Ok(())
    }

    /// Returns the store registered under `name`, creating it with the
    /// default factory if there is none.
    pub fn get(&self, name: &str) -> Arc<dyn Store> {
        let cell = self.cell(name);
        cell.get_or_init(|| (self.factory)(name)).clone()
    }

    /// Returns the store registered under `name`, if there is one, without
    /// creating it.
    pub fn get_registered(&self, name: &str) -> Option<Arc<dyn Store>> {
        let stores = self.stores.read().unwrap_or_else(PoisonError::into_inner);
        stores.get(name).and_then(|cell| cell.get().cloned())
    }

    /// Returns whether a store is registered under `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.get_registered(name).is_some()
    }

    fn cell(&self, name: &str) -> Slot {
        if let Some(cell) = self
            .stores
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return cell.clone();
        }
        self.stores
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_owned())
            .or_default()
            .clone()
    }
}

#[cfg(feature = "memory")]
impl Default for StoreRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for StoreRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stores = self.stores.read().unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<&str> = stores.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("StoreRegistry")
            .field("names", &names)
            .finish_non_exhaustive()
    }
}
