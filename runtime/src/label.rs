//! Labels: names for what a coroutine does, shown in the watchdog's stall reports.

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Mutex, OnceLock};

use crate::sync::lock;
use crate::worker;

/// A name for what a coroutine does, shown in the watchdog's stall reports.
///
/// A [`Stall`](crate::Stall) says which worker is stuck; to say *what* is stuck, a coroutine
/// names itself with [`set_label`]. The actor layer does it for every activation (with the
/// actor's type), so a handler that blocks its thread is reported by name. A label is
/// interned once and costs a `u32` to set, so naming an activation adds two stores to it.
/// `Copy`, compared by identity: two labels made from the same text are equal.
///
/// ```
/// use coact_runtime::{set_label, Label};
///
/// let label = Label::new("billing::Ledger");
/// coact_runtime::run(move || {
///     set_label(Some(label)); // a stall from here on is reported as `billing::Ledger`
///     assert_eq!(coact_runtime::current_label(), Some(label));
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
    /// actor's activations are labelled with. Cached per thread, so that only a thread's first
    /// call for a type takes the table's lock.
    pub fn of<T: ?Sized + 'static>() -> Label {
        thread_local! {
            static BY_TYPE: RefCell<HashMap<TypeId, Label>> = RefCell::new(HashMap::new());
        }
        let ty = TypeId::of::<T>();
        if let Some(l) = BY_TYPE.with(|m| m.borrow().get(&ty).copied()) {
            return l;
        }
        let l = Label::new(std::any::type_name::<T>());
        BY_TYPE.with(|m| m.borrow_mut().insert(ty, l));
        l
    }

    /// The label's text.
    pub fn name(self) -> &'static str {
        lock(table()).names[self.0.get() as usize - 1]
    }

    /// The raw id, 0 standing for none (as the workers publish it).
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

/// Labels the calling coroutine (`None` clears it) until it finishes or labels itself again;
/// does nothing outside a coroutine. See [`Label`].
#[inline]
pub fn set_label(label: Option<Label>) {
    worker::set_label(Label::id(label));
}

/// The calling coroutine's label, if it set one.
pub fn current_label() -> Option<Label> {
    worker::current_label().and_then(Label::from_id)
}
