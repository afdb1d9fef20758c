//! [`StoreRegistry`]: named stores handed out on demand.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use crate::{Error, FullStore, Result, Store};

type Factory = dyn Fn(&str) -> Registered + Send + Sync;
/// A name's slot: filled once, by `register` or by the factory.
type Slot = Arc<OnceLock<Registered>>;

/// A registered store, kept with every ability it has.
#[derive(Clone)]
enum Registered {
    /// A store that is only known to implement [`Store`].
    Plain(Arc<dyn Store>),
    Full(Arc<dyn FullStore>),
}

impl Registered {
    /// `store` as a [`FullStore`] if it is one of this crate's backends:
    /// the plain signatures of the contract (`register`,
    /// `with_default_factory`) take any `Store`, and without this a
    /// `MemoryStore` registered through them could not count.
    fn new<S: Store + 'static>(store: S) -> Self {
        let store: Box<dyn Any> = Box::new(store);
        #[cfg(feature = "memory")]
        let store = match store.downcast::<crate::MemoryStore>() {
            Ok(store) => return Registered::Full(Arc::new(*store)),
            Err(store) => store,
        };
        #[cfg(feature = "file")]
        let store = match store.downcast::<crate::FileStore>() {
            Ok(store) => return Registered::Full(Arc::new(*store)),
            Err(store) => store,
        };
        // `ValkeyStore` is an alias of `RedisStore`: one type to look for.
        #[cfg(feature = "redis")]
        let store = match store.downcast::<crate::RedisStore>() {
            Ok(store) => return Registered::Full(Arc::new(*store)),
            Err(store) => store,
        };
        match store.downcast::<S>() {
            Ok(store) => Registered::Plain(Arc::new(*store)),
            Err(_) => unreachable!("a Box<dyn Any> made from an S downcasts to S"),
        }
    }

    fn plain(&self) -> Arc<dyn Store> {
        match self {
            Registered::Plain(store) => store.clone(),
            Registered::Full(store) => store.clone(),
        }
    }

    fn full(&self, name: &str) -> Result<Arc<dyn FullStore>> {
        match self {
            Registered::Full(store) => Ok(store.clone()),
            Registered::Plain(_) => Err(Error::Unsupported {
                message: format!(
                    "the store named {name:?} was registered as a plain Store; register a \
                     store that implements AtomicStore, BatchStore and Maintenance (every \
                     kvstores backend does) with register_full or with_full_factory"
                ),
            }),
        }
    }
}

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
/// # Plain and full stores
///
/// [`get`](StoreRegistry::get) hands out an `Arc<dyn Store>`: the six
/// methods of the contract. What keeps state for a web application needs
/// more — a rate limiter counts with
/// [`AtomicStore::increment`](crate::AtomicStore::increment), a session
/// store creates with `set_if_absent` — so
/// [`get_full`](StoreRegistry::get_full) hands out the same store as an
/// `Arc<dyn FullStore>`, with every extension trait. Every backend of this
/// crate is a [`FullStore`], however it was registered (through
/// [`register`](StoreRegistry::register) or
/// [`register_full`](StoreRegistry::register_full), by a factory of
/// [`with_default_factory`](StoreRegistry::with_default_factory) or of
/// [`with_full_factory`](StoreRegistry::with_full_factory)). A store of your
/// own that implements only [`Store`] can be registered with `register` and
/// is handed out by `get`; `get_full` refuses it with
/// [`Error::Unsupported`].
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
        Self::with_full_factory(|_| crate::MemoryStore::new())
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
            factory: Box::new(move |name| Registered::new(factory(name))),
        }
    }

    /// Creates a registry whose default factory makes stores with every
    /// ability ([`FullStore`]): what to use with a store of your own that
    /// implements the extension traits. The built-in backends are full
    /// through [`with_default_factory`](Self::with_default_factory) too.
    ///
    /// # Example
    ///
    /// ```
    /// use kvstores::{MemoryStore, NamespacedStore, StoreRegistry};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let root = MemoryStore::new();
    /// let registry = StoreRegistry::with_full_factory(move |name| root.with_namespace(name));
    /// let limits = registry.get_full("rate_limit")?;
    /// assert_eq!(limits.increment("203.0.113.9", 1, None).await?, 1);
    /// # Ok::<(), kvstores::Error>(()) }).unwrap();
    /// ```
    pub fn with_full_factory<S, F>(factory: F) -> Self
    where
        S: FullStore + 'static,
        F: Fn(&str) -> S + Send + Sync + 'static,
    {
        StoreRegistry {
            stores: RwLock::default(),
            factory: Box::new(move |name| Registered::Full(Arc::new(factory(name)))),
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
        self.insert(name, Registered::new(store), allow_override)
    }

    /// Registers `store`, which has every ability, under `name`: what to
    /// use for a store of your own that implements the extension traits, so
    /// that [`get_full`](Self::get_full) hands it out.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyRegistered`] as for [`register`](Self::register).
    pub fn register_full(
        &self,
        name: &str,
        store: impl FullStore + 'static,
        allow_override: bool,
    ) -> Result<()> {
        self.insert(name, Registered::Full(Arc::new(store)), allow_override)
    }

    fn insert(&self, name: &str, store: Registered, allow_override: bool) -> Result<()> {
        let cell = Arc::new(OnceLock::from(store));
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
        self.registered(name).plain()
    }

    /// Returns the store registered under `name` with every ability
    /// ([`FullStore`]), creating it with the default factory if there is
    /// none. It is the same store, and the same allocation, that
    /// [`get`](Self::get) returns.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] if the store under `name` was registered with
    /// [`register`](Self::register) (or made by the factory of
    /// [`with_default_factory`](Self::with_default_factory)) and is not one
    /// of this crate's backends, so it is only known to be a [`Store`].
    ///
    /// # Example
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvstores::StoreRegistry;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let registry = StoreRegistry::new();
    /// let sessions = registry.get_full("sessions")?;
    /// assert!(sessions.set_if_absent("id", kvstores::Bytes::new(), None).await?);
    /// assert!(registry.get("sessions").exists("id").await?);
    /// # Ok::<(), kvstores::Error>(()) }).unwrap();
    /// ```
    pub fn get_full(&self, name: &str) -> Result<Arc<dyn FullStore>> {
        self.registered(name).full(name)
    }

    fn registered(&self, name: &str) -> Registered {
        let cell = self.cell(name);
        cell.get_or_init(|| (self.factory)(name)).clone()
    }

    /// Returns the store registered under `name`, if there is one, without
    /// creating it.
    pub fn get_registered(&self, name: &str) -> Option<Arc<dyn Store>> {
        let stores = self.stores.read().unwrap_or_else(PoisonError::into_inner);
        stores
            .get(name)
            .and_then(|cell| cell.get().map(Registered::plain))
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
