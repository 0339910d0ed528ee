//! `sync::decode`: every sync message a peer can send. Input: a mode byte
//! ([`converge_fuzz::RESEAL`]: repair the checksum), a byte choosing the
//! size limit (the default, or one below the message's size), then the
//! message.
//!
//! Checked: no panic; a message over the limit is refused before decoding;
//! an accepted message has the shapes the session relies on and survives a
//! round trip (encode, decode: the same envelope), and the harness's
//! [`reframe`] gives it any session id and sequence number without
//! touching its body.
#![no_main]

use converge::codec::MAX_MESSAGE_LEN;
use converge::sync::{self, Body, SyncError};
use converge_fuzz::{framed, reframe, Input};
use libfuzzer_sys::fuzz_target;

/// Nodes of the estimate level (the value the session uses).
const ESTIMATE_NODES: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.byte();
    let limit_choice = input.byte();
    let bytes = framed(mode, input.rest());
    let limit = if limit_choice & 1 == 0 {
        MAX_MESSAGE_LEN
    } else {
        bytes.len().saturating_sub(usize::from(limit_choice >> 1))
    };
    match sync::decode(&bytes, limit, ESTIMATE_NODES) {
        Ok(env) => {
            assert!(bytes.len() <= limit);
            match &env.body {
                Body::Estimate { hashes, .. } => {
                    assert_eq!(hashes.len(), ESTIMATE_NODES);
                }
                Body::Iblt { differing, .. } | Body::KeyList { differing, .. } => {
                    assert_eq!(differing.len(), ESTIMATE_NODES / 64);
                }
                Body::Summary { context, .. } | Body::Equal { context, .. } => {
                    // Canonical: its encoding decodes as a token.
                    let token = converge::codec::encode_context(context);
                    assert_eq!(
                        converge::codec::decode_context(&token).as_ref(),
                        Ok(context)
                    );
                }
                Body::Exchange { states, .. } | Body::States { states, .. } => {
                    assert!(sync::states(states).all(|(k, _)| k.len() <= converge::MAX_KEY_LEN));
                }
                Body::Done { .. } => {}
            }
            let again = sync::encode(&env);
            assert_eq!(
                sync::decode(&again, MAX_MESSAGE_LEN, ESTIMATE_NODES)
                    .ok()
                    .as_ref(),
                Some(&env)
            );
            // The harness's re-framing (varints of every width) keeps the
            // body and sets the session and sequence number it is given.
            for (session, seq) in [(7, 3), (0xfedc_ba98_7654_3210, 70_000)] {
                let reframed = reframe(&bytes, session, seq);
                let got = sync::decode(&reframed, MAX_MESSAGE_LEN, ESTIMATE_NODES)
                    .expect("a re-framed valid message decodes");
                assert_eq!((got.session, got.seq), (session, seq));
                assert_eq!(got.body, env.body);
            }
        }
        Err(SyncError::TooLarge { len, max }) => assert!(len > max && max == limit),
        Err(_) => {}
    }
});
