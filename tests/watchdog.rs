//! The watchdog names a worker stuck in one coroutine (here: a thread-blocking
//! `std::thread::sleep`, the mistake it exists to catch), and stays quiet for coroutines that
//! keep yielding.

use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `f` on a 2-worker runtime whose watchdog threshold is 50 ms; returns its value and the
/// stalls reported (a worker descheduled by a busy machine mid-resume may be one of them).
fn stalls_of<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> (T, Vec<coact::Stall>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let rt = coact::Runtime::builder()
        .workers(2)
        .stall_threshold(Some(Duration::from_millis(50)))
        .on_stall(move |s| {
            let _ = tx.lock().unwrap().send(s.clone());
        })
        .build()
        .unwrap();
    let value = rt.block_on(f);
    // Dropping the runtime joins the watchdog thread: every report is in.
    drop(rt);
    (value, rx.try_iter().collect())
}

#[test]
fn a_thread_blocking_call_in_a_coroutine_is_reported() {
    let (worker, stalls) = stalls_of(|| {
        // The blocking call under test: it holds the worker for 400 ms.
        std::thread::sleep(Duration::from_millis(400));
        coact::current_worker().unwrap()
    });
    let stall = stalls
        .iter()
        .find(|s| s.worker == worker)
        .unwrap_or_else(|| panic!("the stalled worker is named: {stalls:?}"));
    assert_eq!(stall.label, None);
    assert!(stall.running_for >= Duration::from_millis(50));
    assert!(stall.to_string().contains("thread-blocking"), "{stall}");
    assert!(stall.to_string().contains("one coroutine"), "{stall}");
}

#[test]
fn a_stall_report_names_the_coroutine_s_label() {
    let label = coact::Label::new("tests::ledger");
    let ((), stalls) = stalls_of(move || {
        coact::set_label(Some(label));
        // The blocking call under test.
        std::thread::sleep(Duration::from_millis(400));
    });
    let stall = stalls
        .iter()
        .find(|s| s.label.is_some())
        .unwrap_or_else(|| panic!("a labelled stall: {stalls:?}"));
    assert_eq!(stall.label, Some(label));
    assert!(stall.to_string().contains("`tests::ledger`"), "{stall}");
}

/// A label names the stretch of work up to the coroutine's next park or yield: a stall after
/// that is not reported under it.
#[test]
fn a_label_does_not_outlive_the_coroutine_s_next_park() {
    let label = coact::Label::new("tests::before-the-park");
    let ((), stalls) = stalls_of(move || {
        coact::set_label(Some(label));
        coact::yield_now();
        // The blocking call under test.
        std::thread::sleep(Duration::from_millis(400));
    });
    assert!(!stalls.is_empty(), "the stall was reported");
    assert!(
        stalls.iter().all(|s| s.label.is_none()),
        "a stale label: {stalls:?}"
    );
}

/// An actor's activations are labelled with its type, so a handler that blocks its thread is
/// reported by name.
#[test]
fn a_stall_in_an_actor_s_handler_names_the_actor() {
    use coact::actor::{spawn, Actor, Ctx, ReplyTo};

    struct SlowLedger;
    impl Actor for SlowLedger {
        type Msg = ReplyTo<()>;
        fn handle(&mut self, reply: ReplyTo<()>, _ctx: &mut Ctx<'_, Self::Msg>) {
            // The blocking call under test.
            std::thread::sleep(Duration::from_millis(400));
            reply.send(());
        }
    }
    let ((), stalls) = stalls_of(|| {
        let ledger = spawn(SlowLedger);
        assert_eq!(ledger.ask(|r| r, Duration::from_secs(30)), Ok(()));
    });
    let stall = stalls
        .iter()
        .find(|s| s.label.is_some())
        .unwrap_or_else(|| panic!("an actor's activation is labelled: {stalls:?}"));
    let name = stall.label.unwrap().name();
    assert!(name.ends_with("SlowLedger"), "{name}");
    assert!(stall.to_string().contains("SlowLedger"), "{stall}");
}

#[test]
fn coroutines_that_yield_are_not_reported() {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let rt = coact::Runtime::builder()
        .workers(1)
        // Generous, so that the OS descheduling the worker thread cannot look like a stall.
        .stall_threshold(Some(Duration::from_secs(2)))
        .on_stall(move |s| {
            let _ = tx.lock().unwrap().send(s.clone());
        })
        .build()
        .unwrap();
    rt.block_on(|| {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_millis(600) {
            n = n.wrapping_add(1);
            coact::yield_now();
        }
        n
    });
    drop(rt); // joins the watchdog thread too
    assert!(rx.try_recv().is_err(), "no stall should be reported");
}

/// Blocks its worker's thread in its handler: the mistake the watchdog reports.
struct Sleepy;

impl coact::actor::Actor for Sleepy {
    type Msg = coact::actor::ReplyTo<()>;
    fn handle(&mut self, reply: Self::Msg, _ctx: &mut coact::actor::Ctx<'_, Self::Msg>) {
        // The blocking call under test.
        std::thread::sleep(Duration::from_millis(400));
        reply.send(());
    }
}

/// A handler actor's activation is labelled with the actor's type, so a handler that blocks
/// its thread is reported by name.
#[test]
fn a_stalling_handler_actor_is_reported_by_its_type() {
    let ((), stalls) = stalls_of(|| {
        let a = coact::actor::spawn(Sleepy);
        a.ask(|r| r, Duration::from_secs(30)).unwrap();
    });
    let stall = stalls
        .iter()
        .find(|s| s.label.is_some())
        .unwrap_or_else(|| panic!("a labelled stall: {stalls:?}"));
    assert_eq!(stall.label, Some(coact::Label::of::<Sleepy>()));
    assert!(stall.to_string().contains("Sleepy"), "{stall}");
}
