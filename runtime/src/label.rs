//! Labels: names for what a coroutine does, shown in the watchdog's stall reports.

use std::any::TypeId;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::num::NonZeroU32;
use std::sync::{Mutex, OnceLock};

use crate::sync::lock;
use crate::worker;

/// A name for what a coroutine does, shown in the watchdog's stall reports.
///
/// A [`Stall`](crate::Stall) says which worker is stuck; to say *what* is stuck, a coroutine
/// labels what it is about to do with [`set_label`], and a stall that begins before it next
/// parks or yields is reported with that label (a coroutine that loops over blocking calls,
/// such as a process actor's `recv` loop, labels each turn). Each activation of a handler
/// actor is labelled with the actor's type, so a handler that blocks its thread or computes
/// for long before it first waits is reported by name. A label is interned once; setting one
/// is a store, and nothing else in the runtime pays for labels.
/// `Copy`, compared by identity: two labels made from the same text are equal.
///
/// ```
/// use coact_runtime::{set_label, Label};
///
/// let label = Label::new("billing::Ledger");
/// coact_runtime::run(move || {
///     set_label(Some(label)); // a stall from here to the next park is reported by this name
/// });
/// assert_eq!(label.name(), "billing::Ledger");
/// assert_eq!(Label::new("billing::Ledger"), label);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Label(NonZeroU32);

/// Every label's text, by id (index + 1), and the ids by text.
struct Table {
    names: Vec<&'static str>,
    ids: HashMap<&'static str, NonZeroU32>,
}

fn table() -> &'static Mutex<Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE.get_or_init(|| {
        Mutex::new(Table {
            names: Vec::new(),
            ids: HashMap::new(),
        })
    })
}

impl Label {
    /// The label for `name`: made (and its text kept for the life of the process) the first
    /// time a name is seen, found again after that. Meant for a bounded set of names (actor
    /// types, roles), not one per request.
    ///
    /// # Panics
    /// Past `u32::MAX - 1` distinct names.
    pub fn new(name: &str) -> Label {
        let mut t = lock(table());
        if let Some(&id) = t.ids.get(name) {
            return Label(id);
        }
        let text: &'static str = Box::leak(name.to_owned().into_boxed_str());
        t.names.push(text);
        let id = u32::try_from(t.names.len())
            .ok()
            .and_then(NonZeroU32::new)
            .expect("coact: too many distinct labels");
        t.ids.insert(text, id);
        Label(id)
    }

    /// The label named after type `T` (its [`type_name`](std::any::type_name)): what an
    /// actor's activations are labelled with. Cached per thread: only a thread's first call
    /// for a type takes the table's lock, the last few types it looked up cost a comparison
    /// or two each, and the others a look in a small map.
    #[inline]
    pub fn of<T: ?Sized + 'static>() -> Label {
        let ty = TypeId::of::<T>();
        RECENT.with(|r| {
            for slot in &r.types {
                match slot.get() {
                    Some((t, l)) if t == ty => return l,
                    Some(_) => {}
                    None => break,
                }
            }
            r.miss(ty, std::any::type_name::<T>())
        })
    }

    fn of_slow(ty: TypeId, name: &'static str) -> Label {
        thread_local! {
            static BY_TYPE: RefCell<HashMap<TypeId, Label, BuildHasherDefault<TypeIdHasher>>> =
                RefCell::new(HashMap::default());
        }
        if let Some(l) = BY_TYPE.with(|m| m.borrow().get(&ty).copied()) {
            return l;
        }
        let l = Label::new(name);
        BY_TYPE.with(|m| m.borrow_mut().insert(ty, l));
        l
    }

    /// The label's text.
    pub fn name(self) -> &'static str {
        lock(table()).names[self.0.get() as usize - 1]
    }

    /// The raw id, 0 standing for none (as the workers publish it).
    #[inline]
    pub(crate) fn id(label: Option<Label>) -> u32 {
        label.map_or(0, |l| l.0.get())
    }

    /// The label with raw id `id`, if any.
    pub(crate) fn from_id(id: u32) -> Option<Label> {
        NonZeroU32::new(id).map(Label)
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Label").field(&self.name()).finish()
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The types a thread looked up last, with their labels: actors of a few types taking turns
/// on a worker (a ping-pong, a pipeline's stages) each find theirs here. With one entry, two
/// types taking turns missed every time, and the lookup behind it (with SipHash then) took
/// 29 % of an actor ping-pong's instructions.
struct Recent {
    types: [Cell<Option<(TypeId, Label)>>; RECENT_TYPES],
    /// The entry the next miss replaces.
    next: Cell<usize>,
}

/// Entries in [`Recent`].
const RECENT_TYPES: usize = 4;

thread_local! {
    static RECENT: Recent = const {
        Recent {
            types: [const { Cell::new(None) }; RECENT_TYPES],
            next: Cell::new(0),
        }
    };
}

impl Recent {
    /// Finds the label of a type not among the recent ones, and keeps it there.
    #[cold]
    fn miss(&self, ty: TypeId, name: &'static str) -> Label {
        let l = Label::of_slow(ty, name);
        let i = self.next.get();
        self.types[i].set(Some((ty, l)));
        self.next.set((i + 1) % RECENT_TYPES);
        l
    }
}

/// Hashes a [`TypeId`], which is a hash of its type already: it keeps the bits it is given
/// instead of running SipHash over them (with SipHash, a lookup took about 220 instructions).
#[derive(Default)]
struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }

    fn write_u128(&mut self, n: u128) {
        // Both halves; the truncations are the point.
        self.0 ^= n as u64 ^ (n >> 64) as u64;
    }
}

/// Labels what the calling coroutine does now (`None` clears it), for the watchdog: a stall
/// that begins before the coroutine next parks or yields is reported with this label. Does
/// nothing outside a coroutine. See [`Label`].
#[inline]
pub fn set_label(label: Option<Label>) {
    worker::set_label(Label::id(label));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Types looked up in turn keep their labels, named after the types: two (both stay in
    /// the recent entries) and six (more than there are entries, so lookups miss and replace
    /// each other).
    #[test]
    fn labels_of_types_taking_turns_stay_theirs() {
        struct First;
        struct Second;
        let (a, b) = (Label::of::<First>(), Label::of::<Second>());
        assert_ne!(a, b);
        for _ in 0..3 {
            assert_eq!(Label::of::<First>(), a);
            assert_eq!(Label::of::<Second>(), b);
        }
        assert!(a.name().ends_with("First"), "{}", a.name());
        assert!(b.name().ends_with("Second"), "{}", b.name());
        assert_eq!(Label::new(std::any::type_name::<Second>()), b);
        let names = ["u8", "u16", "u32", "u64", "i8", "i16"];
        for _ in 0..3 {
            let got = [
                Label::of::<u8>(),
                Label::of::<u16>(),
                Label::of::<u32>(),
                Label::of::<u64>(),
                Label::of::<i8>(),
                Label::of::<i16>(),
            ];
            for (l, n) in got.iter().zip(names) {
                assert_eq!(l.name(), n);
                assert_eq!(*l, Label::new(n));
            }
        }
        assert_eq!(Label::of::<First>(), a);
    }
}
