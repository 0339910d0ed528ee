//! `Engine::merge` on a real engine: what a peer's delta or state does to
//! a replica. Input: a mode byte ([`converge_fuzz::RESEAL`]: repair every
//! payload's checksum), then merges, each a key selector byte
//! ([`fixture::key_for`]: a key of the fixture, which holds every type, or
//! a new key) and a chunk (the payload).
//!
//! Checked after every merge: a failed one changed nothing (the key's
//! stored bytes, the causal record) and failed for the input's sake, not
//! the engine's; a successful one decoded, the key reads, its stored bytes
//! are the canonical encoding of its state, and a state or a delta without
//! dependencies (applied at once, unless the record held its dot already)
//! is included in the key's new state.
//! Every [`HEALTH_EVERY`] inputs: a local write works and `verify` finds the
//! anti-entropy tree consistent with the data.
#![no_main]

use converge::codec::{decode_item, encode_state};
use converge::{Dot, Engine, Item};
use converge_fuzz::fixture::{
    self, assert_input_error, check_healthy, key_for, lock, HEALTH_EVERY,
};
use converge_fuzz::{framed, Input, Scratch};
use libfuzzer_sys::fuzz_target;
use std::sync::Mutex;

static ENGINE: Mutex<Scratch<Engine>> =
    Mutex::new(Scratch::new("merge", fixture::open_fixture, close));

fn close() {
    lock(&ENGINE).close();
}

fuzz_target!(|data: &[u8]| {
    let mut slot = lock(&ENGINE);
    let (e, number) = slot.next_input();
    let mut input = Input::new(data);
    let mode = input.byte();
    while !input.is_empty() {
        let key = key_for(input.byte(), number);
        let payload = framed(mode, input.chunk());
        merge_one(e, &key, &payload);
    }
    if number % HEALTH_EVERY == 0 {
        check_healthy(e);
    }
});

fn merge_one(e: &Engine, key: &[u8], payload: &[u8]) {
    let before = e.state_bytes(key).expect("read the key before");
    let context = e.context();
    match e.merge(key, payload) {
        Err(err) => {
            assert_input_error(&err);
            assert_eq!(
                e.state_bytes(key).expect("read the key after"),
                before,
                "a failed merge ({err}) changed the key"
            );
            assert_eq!(
                e.context(),
                context,
                "a failed merge ({err}) changed the record"
            );
        }
        Ok(()) => {
            let item = decode_item(payload).expect("a merged payload decodes");
            // A delta whose dot the record held already is not applied
            // again (its effects are here, or were collected): a peer
            // never sends two deltas with one dot, the fuzzer does.
            let applied_at_once = match &item {
                Item::State(_) => true,
                Item::Delta(d) => {
                    d.deps.is_none() && !context.contains(&Dot::new(d.origin, d.seq))
                }
            };
            let state = e.state(key).expect("the merged key reads");
            if let Some(s) = &state {
                let stored = e.state_bytes(key).expect("read stored bytes");
                assert_eq!(
                    stored,
                    Some(encode_state(s)),
                    "stored bytes are not the canonical encoding of the key's state"
                );
                e.read(key).expect("the merged key's value reads");
            }
            if applied_at_once {
                let s = state.expect("a key merged at once exists");
                let mut joined = s.clone();
                joined
                    .try_join(item.state())
                    .expect("the merged payload has the key's type");
                assert_eq!(
                    joined, s,
                    "the key's state does not include what was merged"
                );
            }
        }
    }
}
