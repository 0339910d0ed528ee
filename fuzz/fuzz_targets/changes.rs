//! The changes feed and session tokens on a real engine: pages a peer
//! sends (`apply_changes`), cursors a peer asks from (`changes_since`,
//! `acknowledge`) and tokens a client waits for (`wait_for`). Input: a mode
//! byte ([`converge_fuzz::RESEAL`]: repair every encoding's checksum),
//! then operations, each an opcode byte and its arguments:
//! 0 apply a page (chunk); 1 ask for the changes since a cursor (chunk)
//! with a limit (byte); 2 wait, without blocking, for a token (chunk);
//! 3 register a peer (byte) and acknowledge a cursor for it (chunk);
//! 4 a local write (so the log grows).
//!
//! Checked: a failed operation failed for the input's sake and changed
//! nothing; a page applied at once is included in its keys' states; a
//! pending or duplicate page changes no state and no record; a page served
//! holds only this replica's operations the cursor lacked, decodes to
//! itself, and the next cursor is the cursor plus its operations; a token
//! is held exactly when nothing of it is missing.
#![no_main]

use converge::codec::decode_context;
use converge::{Changes, Delivery, Engine, Error, ReplicaId};
use converge_fuzz::fixture::{
    self, assert_input_error, check_healthy, fingerprint, lock, FIXTURE_REPLICA, HEALTH_EVERY,
};
use converge_fuzz::{framed, Input, Scratch};
use libfuzzer_sys::fuzz_target;
use std::sync::Mutex;

static ENGINE: Mutex<Scratch<Engine>> =
    Mutex::new(Scratch::new("changes", fixture::open_fixture, close));

fn close() {
    lock(&ENGINE).close();
}

fuzz_target!(|data: &[u8]| {
    let mut slot = lock(&ENGINE);
    let (e, number) = slot.next_input();
    let mut input = Input::new(data);
    let mode = input.byte();
    while !input.is_empty() {
        match input.byte() % 5 {
            0 => apply(e, &framed(mode, input.chunk())),
            1 => {
                let limit = usize::from(input.byte());
                serve(e, &framed(mode, input.chunk()), limit);
            }
            2 => token(e, &framed(mode, input.chunk())),
            3 => {
                let peer = ReplicaId(u128::from(input.byte()));
                acknowledge(e, peer, &framed(mode, input.chunk()));
            }
            _ => {
                e.increment(b"k00", 1).expect("a local write");
            }
        }
    }
    if number % HEALTH_EVERY == 0 {
        check_healthy(e);
    }
});

fn apply(e: &Engine, page: &[u8]) {
    let before = fingerprint(e);
    match e.apply_changes(page) {
        Err(err) => {
            assert_input_error(&err);
            assert_eq!(
                fingerprint(e),
                before,
                "a refused page ({err}) changed the engine"
            );
        }
        Ok(Delivery::Applied) => {
            let c = Changes::decode(page).expect("an applied page decodes");
            assert!(e.context().includes(&c.dots));
            for (k, s) in &c.entries {
                let held = e.state(k).expect("read").expect("an applied key exists");
                let mut joined = held.clone();
                joined
                    .try_join(s)
                    .expect("the page's state has the key's type");
                assert_eq!(joined, held, "an applied page's state is not in its key");
            }
        }
        Ok(d @ (Delivery::Pending | Delivery::Duplicate)) => {
            let (root, record, _) = fingerprint(e);
            assert_eq!(root, before.0, "a {d:?} page changed a state");
            assert_eq!(record, before.1, "a {d:?} page changed the record");
        }
    }
}

fn serve(e: &Engine, cursor: &[u8], limit: usize) {
    let Ok(cursor) = decode_context(cursor) else {
        return;
    };
    let me = ReplicaId(FIXTURE_REPLICA);
    match e.changes_since(&cursor, limit) {
        Err(err) => {
            assert_input_error(&err);
            assert!(
                matches!(err, Error::CursorTooOld { .. } | Error::InvalidArgument(_)),
                "{err}"
            );
        }
        Ok(page) => {
            let mut expected = cursor.clone();
            match &page.changes {
                None => assert_eq!(page.operations, 0),
                Some(c) => {
                    assert!(page.operations >= 1 && page.operations <= limit.max(1) as u64);
                    assert!(
                        !cursor.includes_any(&c.dots),
                        "a page repeats what the cursor holds"
                    );
                    let mut mine = converge::CausalContext::new();
                    mine.insert_range(me, 1, e.context().next_dot(me).counter - 1);
                    assert!(
                        mine.includes(&c.dots),
                        "a page ships another replica's operations"
                    );
                    assert_eq!(Changes::decode(&c.encode()).as_ref(), Ok(c));
                    expected.merge(&c.dots);
                }
            }
            assert_eq!(page.next, expected);
        }
    }
}

fn token(e: &Engine, bytes: &[u8]) {
    let Ok(t) = decode_context(bytes) else {
        return;
    };
    let missing = e.context().missing(&t);
    match e.wait_for(&t, None) {
        Ok(()) => assert_eq!(missing, 0),
        Err(Error::NotYetVisible { missing: m }) => assert!(m > 0 && m == missing),
        Err(err) => panic!("waiting for a token failed: {err}"),
    }
}

fn acknowledge(e: &Engine, peer: ReplicaId, cursor: &[u8]) {
    let Ok(cursor) = decode_context(cursor) else {
        return;
    };
    e.register_peer(peer).expect("register a peer");
    if let Err(err) = e.acknowledge(peer, &cursor) {
        assert_input_error(&err);
    }
    e.feed_info().expect("the feed's state reads");
}
