//! A query the plan answers costs the UDP workers no heap allocation: every kind of answer
//! the plan holds (an answer set, a static RRset, NODATA, NXDOMAIN, with and without OPT),
//! answered under an allocator that counts this thread's allocations.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};

use xgslb::{
    config::Config,
    daemon::build,
    udp::{PlanAnswers, Planned, answer::MAX_RESPONSE},
};
use xgslb_tests::{
    daemon::{ConfigDir, test_model},
    frame::{Opt, dns_query, wire_name},
};

/// Counts allocations made while the calling thread's `COUNTING` is set.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: defers every call to the system allocator; the counter has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn answers_from_the_plan_allocate_nothing() {
    let dir = ConfigDir::new(
        &test_model()
            .answer(
                "www.example.test.",
                30,
                &[
                    ("198.18.1.10", 3),
                    ("198.18.2.10", 1),
                    ("2001:db8:1::10", 1),
                ],
            )
            .with("records = 2"),
    );
    let cfg = Config::load(&dir.path()).expect("config");
    let built = build(&cfg).expect("build");
    let plan = PlanAnswers::new(built.entries.clone(), &built.prefixes);
    let questions: [(&str, u16); 6] = [
        ("www.example.test", 1),
        ("WWW.Example.test", 28),
        ("api.example.test", 1),
        ("example.test", 15),
        ("www.example.test", 65),
        ("nope.example.test", 1),
    ];
    let mut dnssec = Opt::plain();
    dnssec.dnssec_ok = true;
    let queries: Vec<Vec<u8>> = questions
        .iter()
        .flat_map(|&(name, qtype)| {
            [None, Some(Opt::plain()), Some(dnssec.clone())]
                .map(|opt| dns_query(7, 0x0100, &wire_name(name), qtype, 1, opt.as_ref()))
        })
        .collect();
    let client = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    let mut out = [0u8; MAX_RESPONSE];
    let mut pick = 0u32;
    let mut answered = 0;
    COUNTING.with(|c| c.set(true));
    for _ in 0..100 {
        for q in &queries {
            if let Planned::Answered(_) = plan.answer(q, client, &mut pick, &mut out) {
                answered += 1;
            }
        }
    }
    COUNTING.with(|c| c.set(false));
    assert_eq!(
        answered,
        100 * queries.len(),
        "every question is the plan's"
    );
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0, "allocations");
}
