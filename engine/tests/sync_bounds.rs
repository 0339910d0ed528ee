//! Sync sessions stay bounded: key lists are diffed as they stream in,
//! replies are pulled one message at a time, a difference larger than
//! `max_keys` is repaired over several sessions, and messages of the wrong
//! role, out of turn or out of order end the session and change nothing.

mod common;
use common::{dump, engine};
use converge::sync::{self, Body, Config, Envelope, Outcome, Session, SyncError};
use converge::{Batch, Engine};

fn fill(e: &Engine, prefix: &str, n: u64) {
    let mut b = Batch::new();
    for i in 0..n {
        b.increment(format!("{prefix}{i:05}"), i + 1);
    }
    e.write(&b).unwrap();
}

fn tiny(iblt: bool, max_keys: usize) -> Config {
    Config {
        message_budget: 1024,
        iblt,
        max_keys,
        ..Config::default()
    }
}

#[test]
fn key_lists_stream_in_many_parts_and_converge() {
    let a = engine(1);
    let b = engine(2);
    fill(&a, "a", 3000);
    fill(&b, "b", 2000);
    // 500 keys equal on both sides.
    fill(&a, "both", 500);
    for i in 0..500 {
        let k = format!("both{i:05}");
        b.merge(k.as_bytes(), &a.state_bytes(k.as_bytes()).unwrap().unwrap())
            .unwrap();
    }
    let ((oa, sa), (ob, sb)) = sync::sync_engines(&*a, &*b, tiny(false, 1 << 20)).unwrap();
    assert_eq!((oa, ob), (Outcome::Converged, Outcome::Converged));
    assert_eq!(dump(&a), dump(&b));
    assert_eq!(a.root().unwrap(), b.root().unwrap());
    // Key lists of ~5,500 entries at 24 bytes in parts of ~1 KiB.
    assert!(sa.messages_sent > 100, "{sa:?}");
    assert_eq!(sa.states_sent, 3000, "only the keys b lacks travel to b");
    assert_eq!(sb.states_sent, 2000);
    assert!(!sa.truncated && !sb.truncated);
}

#[test]
fn a_difference_beyond_max_keys_is_repaired_over_several_sessions() {
    for iblt in [false, true] {
        let a = engine(1);
        let b = engine(2);
        fill(&a, "a", 250);
        fill(&b, "b", 130);
        let mut sessions = 0;
        loop {
            sessions += 1;
            let ((oa, sa), (ob, sb)) = sync::sync_engines(&*a, &*b, tiny(iblt, 100)).unwrap();
            assert!(
                sa.states_sent <= 100 && sb.states_sent <= 100,
                "{sa:?} {sb:?}"
            );
            if oa == Outcome::Converged {
                assert_eq!(ob, Outcome::Converged);
                break;
            }
            assert_eq!((oa, ob), (Outcome::Diverged, Outcome::Diverged));
            assert!(sa.truncated || sb.truncated, "{sa:?} {sb:?}");
            assert!(sessions < 10, "no progress");
        }
        assert_eq!(sessions, 3, "250 keys at 100 a session (iblt {iblt})");
        assert_eq!(dump(&a), dump(&b));
        assert_eq!(a.root().unwrap(), b.root().unwrap());
    }
}

#[test]
fn replies_are_pulled_one_at_a_time_and_a_message_out_of_turn_ends_the_session() {
    let a = engine(1);
    let b = engine(2);
    fill(&a, "a", 400);
    let cfg = tiny(false, 1 << 20);
    let (mut sa, first) = Session::initiate(&*a, cfg.clone()).unwrap();
    let mut sb = Session::respond(&*b, cfg);
    sb.receive(&first).unwrap();
    let estimate = sb.next_message().unwrap().unwrap();
    assert!(sb.next_message().unwrap().is_none());
    sa.receive(&estimate).unwrap();
    // a's key list: 400 entries of 24 bytes in ~1 KiB parts, built as
    // pulled.
    assert!(sa.has_output());
    let part = sa.next_message().unwrap().unwrap();
    assert!(part.len() < 2048, "{}", part.len());
    assert!(sa.has_output());
    // b answers nothing until the last part; a message given to a while
    // it still has parts to send is out of turn.
    sb.receive(&part).unwrap();
    assert!(!sb.has_output());
    let before = dump(&a);
    let replay = estimate.clone();
    assert!(matches!(sa.receive(&replay), Err(SyncError::Unexpected(_))));
    assert!(sa.is_finished() && sa.outcome().is_none());
    assert!(matches!(sa.next_message(), Ok(None)));
    assert_eq!(dump(&a), before);
}

/// A forged first message of session `id`: a Summary whose root differs
/// from any replica's, with an empty record.
fn summary(id: u64) -> Vec<u8> {
    sync::encode(&Envelope {
        session: id,
        seq: 0,
        body: Body::Summary {
            horizon: Default::default(),
            root: 1,
            count: 1,
            context: Default::default(),
        },
    })
}

fn session_of(first: &[u8]) -> u64 {
    sync::decode(first, usize::MAX, 1024).unwrap().session
}

#[test]
fn messages_of_the_wrong_role_are_refused() {
    let a = engine(1);
    let b = engine(2);
    fill(&a, "a", 10);
    let (mut sa, first) = Session::initiate(&*a, Config::default()).unwrap();
    let id = session_of(&first);
    // The initiator is sent a Summary (an initiator's message).
    match sa.receive(&summary(id)) {
        Err(SyncError::Unexpected(m)) => assert!(m.contains("Initiator"), "{m}"),
        other => panic!("{other:?}"),
    }
    // The responder is sent an Estimate (a responder's message).
    let mut sb = Session::respond(&*b, Config::default());
    let estimate = sync::encode(&Envelope {
        session: id,
        seq: 0,
        body: Body::Estimate {
            horizon: Default::default(),
            hashes: vec![0; 1024],
            context: Default::default(),
        },
    });
    match sb.receive(&estimate) {
        Err(SyncError::Unexpected(m)) => assert!(m.contains("Responder"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(dump(&b).is_empty());
}

/// A responder that got a Summary and sent its Estimate, and the session
/// id, for forged key lists.
fn responder_awaiting_diff(b: &Engine) -> (Session<&Engine>, u64) {
    let mut sb = Session::respond(b, Config::default());
    let id = 77;
    sb.receive(&summary(id)).unwrap();
    assert!(sb.next_message().unwrap().is_some());
    (sb, id)
}

fn key_list(
    id: u64,
    seq: u32,
    differing: Vec<u64>,
    entries: &[(u64, u128)],
    last: bool,
) -> Vec<u8> {
    let mut blob = Vec::new();
    for (kh, eh) in entries {
        sync::push_entry(&mut blob, *kh, *eh);
    }
    sync::encode(&Envelope {
        session: id,
        seq,
        body: Body::KeyList {
            differing,
            entries: &blob,
            last,
        },
    })
}

#[test]
fn malformed_key_lists_end_the_session_and_change_nothing() {
    let b = engine(2);
    fill(&b, "b", 50);
    let before = dump(&b);
    let all = vec![u64::MAX; 16];
    let one_node = {
        let mut v = vec![0u64; 16];
        v[0] = 1;
        v
    };
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "descending within a part",
            vec![key_list(77, 1, all.clone(), &[(9, 0), (5, 0)], true)],
        ),
        (
            "duplicate entry",
            vec![key_list(77, 1, all.clone(), &[(5, 1), (5, 1)], true)],
        ),
        (
            "descending across parts",
            vec![
                key_list(77, 1, all.clone(), &[(100, 0)], false),
                key_list(77, 2, all.clone(), &[(50, 0)], true),
            ],
        ),
        (
            "outside the listed subtrees",
            vec![key_list(77, 1, one_node.clone(), &[(u64::MAX, 0)], true)],
        ),
        (
            "subtrees change between parts",
            vec![
                key_list(77, 1, all.clone(), &[(1, 0)], false),
                key_list(77, 2, one_node.clone(), &[(2, 0)], true),
            ],
        ),
        ("a part of a partial entry", {
            let mut m = key_list(77, 1, all.clone(), &[(1, 0)], true);
            // Re-encode with 23 bytes of entries.
            let env = sync::decode(&m, usize::MAX, 1024).unwrap();
            if let Body::KeyList { entries, .. } = env.body {
                let short = entries[..23].to_vec();
                m = sync::encode(&Envelope {
                    session: 77,
                    seq: 1,
                    body: Body::KeyList {
                        differing: all.clone(),
                        entries: &short,
                        last: true,
                    },
                });
            }
            vec![m]
        }),
    ];
    for (name, msgs) in cases {
        let (mut sb, _) = responder_awaiting_diff(&b);
        let mut result = Ok(());
        for m in &msgs {
            result = sb.receive(m);
            if result.is_err() {
                break;
            }
            while sb.next_message().unwrap().is_some() {}
        }
        assert!(
            matches!(result, Err(SyncError::Malformed(_))),
            "{name}: {result:?}"
        );
        assert!(sb.is_finished(), "{name}");
        assert_eq!(dump(&b), before, "{name} changed state");
    }
}

#[test]
fn forged_wants_beyond_max_keys_are_capped() {
    let a = engine(1);
    fill(&a, "a", 20);
    let cfg = Config {
        iblt: false,
        max_keys: 1000,
        ..Config::default()
    };
    let (mut sa, first) = Session::initiate(&*a, cfg).unwrap();
    let id = session_of(&first);
    let estimate = sync::encode(&Envelope {
        session: id,
        seq: 0,
        body: Body::Estimate {
            horizon: Default::default(),
            hashes: vec![7; 1024],
            context: Default::default(),
        },
    });
    sa.receive(&estimate).unwrap();
    while sa.next_message().unwrap().is_some() {}
    // 5,000 forged wants, then the states a really has.
    let khs: Vec<u64> = (0..5000u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect();
    let want = sync::hashes_blob(&khs);
    let exchange = sync::encode(&Envelope {
        session: id,
        seq: 1,
        body: Body::Exchange {
            states: &[],
            want: &want,
            last: true,
        },
    });
    sa.receive(&exchange).unwrap();
    let mut states_msgs = 0;
    while sa.next_message().unwrap().is_some() {
        states_msgs += 1;
    }
    assert!(states_msgs >= 1);
    assert!(sa.stats().truncated);
}

#[test]
fn an_oversized_control_message_is_refused_before_decoding() {
    let b = engine(2);
    let mut ctx = converge::CausalContext::new();
    for r in 0..80_000u128 {
        ctx.insert_range(converge::ReplicaId(r * 0x1_0000_0001_0000_0001), 1, 3);
    }
    let big = sync::encode(&Envelope {
        session: 1,
        seq: 0,
        body: Body::Summary {
            horizon: Default::default(),
            root: 1,
            count: 1,
            context: ctx,
        },
    });
    assert!(big.len() > sync::CONTROL_MESSAGE_LEN);
    let mut sb = Session::respond(&*b, Config::default());
    assert!(matches!(
        sb.receive(&big),
        Err(SyncError::TooLarge { max, .. }) if max == sync::CONTROL_MESSAGE_LEN
    ));
}
