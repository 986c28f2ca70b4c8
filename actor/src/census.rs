//! The handler actors alive on each runtime, so that the end of a runtime stops the idle ones.
//!
//! A running or queued activation learns of the end on its own: the runtime cancels the one
//! and gives up the other (`Runnable::abandoned`). An idle handler actor has neither; it would
//! stay as it is for as long as an address to it lived (in the registry, in another idle
//! actor, in the thread that ran the runtime), its `stopped` never run, its monitors never
//! told and its names never released. So every handler actor is counted here, in its
//! runtime's census, from its spawn until it stops, and a hook that the runtime runs at its
//! end (`Handle::on_end`) schedules each one still counted: the start cannot happen, so the
//! actor stops as killed, as a running one does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use coact_runtime::Handle;

use crate::cell::Control;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The handler actors of one runtime.
pub(crate) struct Census {
    /// `None` once the runtime has ended and the census let go of its actors.
    live: Mutex<Option<Entries>>,
}

/// Entries in chunks that never move, with a list of free places: 16 bytes per actor (a
/// `Slab`'s entry takes 24), and no reallocation that copies them all, or briefly holds them
/// twice, as the count grows. With the key (a `u32`, which fits in the cell's padding), a
/// million idle actors take 15 MB more, 3 % (the first version, a `Slab` and an `Arc` and key
/// in each cell, took 30 MB).
#[derive(Default)]
struct Entries {
    chunks: Vec<Box<[Entry]>>,
    /// Places freed, to reuse first.
    free: Vec<usize>,
    /// Places ever used.
    used: usize,
}

/// One place: an actor, or nothing (free).
type Entry = Option<Weak<dyn Control>>;

/// Entries per chunk.
const CHUNK: usize = 4096;

impl Entries {
    fn insert(&mut self, actor: Weak<dyn Control>) -> usize {
        let key = match self.free.pop() {
            Some(k) => k,
            None => {
                if self.used == self.chunks.len() * CHUNK {
                    self.chunks.push((0..CHUNK).map(|_| None).collect());
                }
                self.used += 1;
                self.used - 1
            }
        };
        self.chunks[key / CHUNK][key % CHUNK] = Some(actor);
        key
    }

    fn remove(&mut self, key: usize) {
        if self.chunks[key / CHUNK][key % CHUNK].take().is_some() {
            self.free.push(key);
        }
    }

    fn into_actors(self) -> impl Iterator<Item = Weak<dyn Control>> {
        self.chunks
            .into_iter()
            .flat_map(|c| c.into_vec().into_iter().flatten())
    }
}

/// No entry: the actor was spawned after its runtime's census ended.
pub(crate) const NOT_COUNTED: u32 = u32::MAX;

/// Counts `actor`, a handler actor of `handle`'s runtime, until [`uncount`]; returns its key.
/// After the runtime's end nothing is counted: the actor's first activation is given up,
/// which stops it.
pub(crate) fn count(handle: &Handle, actor: Weak<dyn Control>) -> u32 {
    with_census(handle, true, |c| {
        let mut live = lock(&c.live);
        let Some(live) = live.as_mut() else {
            return NOT_COUNTED;
        };
        let key = live.insert(actor);
        u32::try_from(key)
            .ok()
            .filter(|&k| k != NOT_COUNTED)
            .unwrap_or_else(|| {
                // Four billion live actors on one runtime: this one goes uncounted.
                live.remove(key);
                NOT_COUNTED
            })
    })
    .unwrap_or(NOT_COUNTED)
}

/// Removes the entry `key` of an actor of `handle`'s runtime, as it stops.
pub(crate) fn uncount(handle: &Handle, key: u32) {
    if key == NOT_COUNTED {
        return;
    }
    // A census no longer found has ended: it let go of every entry at once.
    with_census(handle, false, |c| {
        if let Some(live) = lock(&c.live).as_mut() {
            live.remove(key as usize);
        }
    });
}

/// Runs `f` with the census of `handle`'s runtime, made (with its end hook) if `make` and
/// there is none yet. A thread keeps the last census it used: spawns and stops come mostly
/// from one runtime's workers, and then take no global lock.
fn with_census<R>(handle: &Handle, make: bool, f: impl FnOnce(&Census) -> R) -> Option<R> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(u64, Arc<Census>)>> =
            const { std::cell::RefCell::new(None) };
    }
    let id = handle.id();
    let mut f = Some(f);
    let hit = LAST.with(|l| match &*l.borrow() {
        Some((last, c)) if *last == id => f.take().map(|f| f(c)),
        _ => None,
    });
    if hit.is_some() {
        return hit;
    }
    let census = find(handle, id, make)?;
    let r = f.take().map(|f| f(&census));
    LAST.with(|l| *l.borrow_mut() = Some((id, census)));
    r
}

/// The census of runtime `id` from the process-wide map; with `make`, a new one (and its end
/// hook) if there is none.
fn find(handle: &Handle, id: u64, make: bool) -> Option<Arc<Census>> {
    static CENSUSES: Mutex<Option<HashMap<u64, Arc<Census>>>> = Mutex::new(None);
    let mut all = lock(&CENSUSES);
    let all_map = all.get_or_insert_with(HashMap::new);
    if let Some(c) = all_map.get(&id) {
        return Some(c.clone());
    }
    if !make {
        return None;
    }
    let census = Arc::new(Census {
        live: Mutex::new(Some(Entries::default())),
    });
    all_map.insert(id, census.clone());
    drop(all);
    let ended = census.clone();
    // Runs now if the runtime has ended already: an actor spawned after that stops at once
    // anyway (its first activation is given up).
    handle.on_end(move || {
        if let Some(all) = lock(&CENSUSES).as_mut() {
            all.remove(&id);
        }
        ended.end();
    });
    Some(census)
}

impl Census {
    /// The runtime has ended: schedules every actor still counted (see the module docs).
    /// Outside the lock: a stop removes its entry, which takes the lock.
    fn end(&self) {
        let Some(live) = lock(&self.live).take() else {
            return;
        };
        for actor in live.into_actors() {
            if let Some(actor) = actor.upgrade() {
                actor.notify();
            }
        }
    }
}
