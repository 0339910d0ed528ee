//! Whole sync sessions against a real engine, in either role, fed a
//! sequence of fuzzed peer messages. Input: a mode byte — bit 0
//! ([`converge_fuzz::RESEAL`]) gives every message the session id and
//! sequence number the session expects and a valid checksum, so mutations
//! reach the phases behind the framing; bit 1: this side initiates (else
//! it responds); bit 2: no IBLT (key lists); bit 3: a 512-byte message
//! budget (replies in many parts) — then the peer's messages, as chunks.
//!
//! Messages go in through `receive` and replies are pulled with
//! `next_message`. Checked: no panic; every reply the session sends
//! decodes; a message
//! that fails ends the session with an error about the input (not an
//! engine failure), changes nothing (the anti-entropy root over every
//! key's stored bytes, the causal record, the pending area), and every later message is refused with
//! `SyncError::Ended`. Every [`HEALTH_EVERY`] inputs: a local write works and `verify`
//! finds the anti-entropy tree consistent with the data.
#![no_main]

use converge::codec::MAX_MESSAGE_LEN;
use converge::sync::{self, Config, Session, SyncError};
use converge::Engine;
use converge_fuzz::fixture::{
    self, assert_input_error, check_healthy, fingerprint, lock, HEALTH_EVERY,
};
use converge_fuzz::{reframe, session_of, Input, Scratch, RESEAL};
use libfuzzer_sys::fuzz_target;
use std::sync::Mutex;

static ENGINE: Mutex<Scratch<Engine>> =
    Mutex::new(Scratch::new("sync_session", fixture::open_fixture, close));

fn close() {
    lock(&ENGINE).close();
}

/// The session id a responder adopts when the first message has none.
const DEFAULT_SESSION: u64 = 0x5e55;

fuzz_target!(|data: &[u8]| {
    let mut slot = lock(&ENGINE);
    let (e, number) = slot.next_input();
    let mut input = Input::new(data);
    let mode = input.byte();
    let config = Config {
        iblt: mode & 4 == 0,
        message_budget: if mode & 8 != 0 {
            512
        } else {
            Config::default().message_budget
        },
        ..Config::default()
    };
    let (mut session, mut id) = if mode & 2 != 0 {
        let (s, first) = Session::initiate(e, config).expect("start a session");
        assert!(sync::decode(&first, MAX_MESSAGE_LEN, 1024).is_ok());
        (s, session_of(&first))
    } else {
        (Session::respond(e, config), None)
    };
    let mut seq = 0u32;
    while !input.is_empty() && !session.is_finished() {
        let raw = input.chunk();
        let msg = if mode & RESEAL != 0 {
            let sid = *id.get_or_insert_with(|| session_of(raw).unwrap_or(DEFAULT_SESSION));
            reframe(raw, sid, seq)
        } else {
            raw.to_vec()
        };
        seq += 1;
        let before = fingerprint(e);
        match receive(&mut session, &msg) {
            Ok(()) => {}
            Err(err) => {
                if let SyncError::Engine(inner) = &err {
                    assert_input_error(inner);
                }
                assert!(session.is_finished());
                assert!(session.outcome().is_none());
                assert_eq!(
                    fingerprint(e),
                    before,
                    "a failed message ({err}) changed the engine"
                );
                assert!(matches!(session.receive(&msg), Err(SyncError::Ended)));
            }
        }
    }
    if number % HEALTH_EVERY == 0 {
        check_healthy(e);
    }
});

/// Pass one message and pull every reply (`receive`, then `next_message`
/// until it has nothing), checking that each reply decodes.
fn receive(session: &mut Session<&Engine>, msg: &[u8]) -> Result<(), SyncError> {
    session.receive(msg)?;
    while let Some(reply) = session.next_message()? {
        assert!(
            sync::decode(&reply, MAX_MESSAGE_LEN, 1024).is_ok(),
            "a reply of the session does not decode"
        );
    }
    Ok(())
}
