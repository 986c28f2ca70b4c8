//! A process-wide registry of actor names.
//!
//! ```
//! use coact_actor::{registry, spawn_process, Inbox};
//!
//! coact_runtime::run(|| {
//!     let echo = spawn_process(|inbox: Inbox<String>| while let Some(_) = inbox.recv() {});
//!     registry::register("echo", &echo).unwrap();
//!     let found = registry::whereis::<String>("echo").expect("registered");
//!     assert_eq!(found.id(), echo.id());
//!     let down = echo.monitor();
//!     echo.stop();
//!     down.recv();
//!     assert!(registry::whereis::<String>("echo").is_none(), "released when it stopped");
//! });
//! ```

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};

use crate::reason::ActorId;
use crate::Addr;

struct Entry {
    id: ActorId,
    addr: Box<dyn Any + Send + Sync>,
}

fn names() -> &'static Mutex<HashMap<String, Entry>> {
    static NAMES: OnceLock<Mutex<HashMap<String, Entry>>> = OnceLock::new();
    NAMES.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why a name could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    /// Another live actor holds the name.
    Taken(ActorId),
    /// The actor has already stopped.
    Stopped,
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterError::Taken(id) => write!(f, "the name is registered to actor {id}"),
            RegisterError::Stopped => f.write_str("the actor has stopped"),
        }
    }
}

impl std::error::Error for RegisterError {}

/// Registers `addr` under `name` until the actor stops (or [`unregister`]).
pub fn register<M: Send + 'static>(
    name: impl Into<String>,
    addr: &Addr<M>,
) -> Result<(), RegisterError> {
    let name = name.into();
    let common = addr.common();
    {
        let mut map = lock(names());
        if let Some(e) = map.get(&name) {
            return Err(RegisterError::Taken(e.id));
        }
        map.insert(
            name.clone(),
            Entry {
                id: addr.id(),
                addr: Box::new(addr.clone()),
            },
        );
    }
    lock(&common.names).push(name.clone());
    // If the actor stopped meanwhile, its release may have missed this name.
    if common.stopped_with().is_some() {
        release(addr.id(), &[name]);
        return Err(RegisterError::Stopped);
    }
    Ok(())
}

/// The address registered under `name`, if there is one and its message type is `M`.
pub fn whereis<M: Send + 'static>(name: &str) -> Option<Addr<M>> {
    lock(names())
        .get(name)
        .and_then(|e| e.addr.downcast_ref::<Addr<M>>().cloned())
}

/// Removes `name`; true if it was registered.
pub fn unregister(name: &str) -> bool {
    lock(names()).remove(name).is_some()
}

/// Releases the names of a stopped actor (those still registered to it).
pub(crate) fn release(id: ActorId, list: &[String]) {
    if list.is_empty() {
        return;
    }
    let mut map = lock(names());
    for n in list {
        if map.get(n).is_some_and(|e| e.id == id) {
            map.remove(n);
        }
    }
}
