//! Write the seed corpora of every fuzz target from real encodings:
//! `gen_corpus [DIR]` (default `fuzz/corpus`) replaces `DIR/<target>/seed-*`.
//! `make fuzz-corpus` runs it; the corpora are checked in.
//!
//! The engine under test is the fuzz fixture ([`seeds::populate`], replica
//! [`FIXTURE_REPLICA`]); its peers are filled by [`seeds::populate_peer`]
//! (or left empty, or given many keys). The seeds are their deltas, full
//! states, causal records and tokens, version vectors, IBLTs, pages of the
//! changes feed, and the messages of real sync sessions with the fixture
//! in either role, recorded under the configurations the session target's
//! mode byte selects.

use converge::codec::{encode_context, encode_iblt, encode_vv};
use converge::sync::{Config, Session};
use converge::{CausalContext, Engine, KeyedDelta, ReplicaId};
use converge_fuzz::fixture::{open_fixture, options, FIXTURE_REPLICA};
use converge_fuzz::{chunk, seeds, RESEAL};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Fresh engines in a scratch directory removed when dropped.
struct Lab {
    dir: PathBuf,
    n: u32,
}

impl Lab {
    fn new() -> Res<Lab> {
        let dir = std::env::temp_dir().join(format!("converge-gen-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Lab { dir, n: 0 })
    }

    fn path(&mut self) -> PathBuf {
        self.n += 1;
        self.dir.join(self.n.to_string())
    }

    /// The fixture engine, as a fuzz target opens it.
    fn fixture(&mut self) -> Res<Engine> {
        let p = self.path();
        std::fs::create_dir_all(&p)?;
        Ok(open_fixture(&p))
    }

    /// An empty engine with replica id `id`.
    fn empty(&mut self, id: u128) -> Res<Engine> {
        Ok(Engine::open(self.path(), options(id))?)
    }

    /// A peer filled by `populate_peer` (with a third replica's help), and
    /// its deltas.
    fn peer(&mut self) -> Res<(Engine, Vec<KeyedDelta>)> {
        let peer = self.empty(0xB0)?;
        let third = self.empty(0xC0)?;
        let deltas = seeds::populate_peer(&peer, &third)?;
        Ok((peer, deltas))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One target's seeds, written as `seed-<name>`.
struct Corpus {
    dir: PathBuf,
    seen: BTreeSet<Vec<u8>>,
}

impl Corpus {
    fn new(root: &Path, target: &str) -> Res<Corpus> {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            if e.file_name().to_string_lossy().starts_with("seed-") {
                std::fs::remove_file(e.path())?;
            }
        }
        Ok(Corpus {
            dir,
            seen: BTreeSet::new(),
        })
    }

    /// Write `bytes` as `seed-<name>` unless an equal seed exists.
    fn add(&mut self, name: &str, bytes: Vec<u8>) -> Res<()> {
        if self.seen.insert(bytes.clone()) {
            std::fs::write(self.dir.join(format!("seed-{name}")), bytes)?;
        }
        Ok(())
    }
}

/// A mode byte then the bytes.
fn moded(mode: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(bytes);
    v
}

/// The merge target's selector byte for `key`: the fixture key's index,
/// or a new key of the input.
fn selector(key: &[u8], i: usize) -> u8 {
    if let Some(p) = seeds::TYPED_KEYS.iter().position(|k| *k == key) {
        return p as u8;
    }
    match std::str::from_utf8(key)
        .ok()
        .and_then(|k| k.strip_prefix('k'))
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(n) if n < 16 => (seeds::TYPED_KEYS.len() + n) as u8,
        _ => 0x80 | (i as u8 & 0x7f),
    }
}

/// The messages each side of a session received: (to the responder, to
/// the initiator).
type Transcript = (Vec<Vec<u8>>, Vec<Vec<u8>>);

fn record(initiator: &Engine, responder: &Engine, config: &Config) -> Res<Transcript> {
    let (mut a, first) = Session::initiate(initiator, config.clone())?;
    let mut b = Session::respond(responder, config.clone());
    let (mut to_b, mut to_a) = (vec![first], Vec::new());
    let (mut got_b, mut got_a) = (Vec::new(), Vec::new());
    while !to_b.is_empty() || !to_a.is_empty() {
        for m in std::mem::take(&mut to_b) {
            to_a.extend(b.handle(&m)?);
            got_b.push(m);
        }
        for m in std::mem::take(&mut to_a) {
            to_b.extend(a.handle(&m)?);
            got_a.push(m);
        }
    }
    Ok((got_b, got_a))
}

/// The chunks of `msgs`, or `None` if one is too long for a chunk.
fn chunks(msgs: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    msgs.iter().all(|m| chunk(&mut out, m)).then_some(out)
}

fn main() -> Res<()> {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    let mut lab = Lab::new()?;
    let fixture = lab.fixture()?;
    let fixture_deltas = seeds::populate(&lab.empty(FIXTURE_REPLICA)?)?;
    let (peer, peer_deltas) = lab.peer()?;

    // codec: deltas, states, contexts, a version vector, an IBLT, pages.
    let mut codec = Corpus::new(&root, "codec")?;
    for (i, d) in peer_deltas.iter().enumerate() {
        codec.add(&format!("delta-{i:02}"), moded(RESEAL, &d.delta.encode()))?;
    }
    let mut old = peer_deltas[0].delta.clone();
    old.deps = None;
    codec.add("delta-kind1", moded(RESEAL, &old.encode()))?;
    for k in seeds::TYPED_KEYS {
        if let Some(s) = peer.state_bytes(k)? {
            codec.add(
                &format!("state-{}", String::from_utf8_lossy(k)),
                moded(RESEAL, &s),
            )?;
        }
    }
    codec.add(
        "context-peer",
        moded(RESEAL, &encode_context(&peer.context())),
    )?;
    codec.add(
        "context-empty",
        moded(RESEAL, &encode_context(&CausalContext::new())),
    )?;
    codec.add(
        "context-token",
        moded(
            RESEAL,
            &encode_context(&converge::token_of(&peer_deltas[20..])),
        ),
    )?;
    codec.add("vv", moded(RESEAL, &encode_vv(&peer.version_vector())))?;
    codec.add("iblt-16", moded(RESEAL, &encode_iblt(&peer.aae_iblt(16)?)))?;
    let page = peer.changes_since(&CausalContext::new(), 8)?;
    if let Some(c) = &page.changes {
        codec.add("page-first", moded(RESEAL, &c.encode()))?;
    }
    if let Some(c) = &peer.changes_since(&page.next, 1000)?.changes {
        codec.add("page-rest", moded(RESEAL, &c.encode()))?;
    }
    // Raw mode (frame checks, truncation diagnosis): a delta and a state.
    codec.add("raw-delta", moded(0, &peer_deltas[1].delta.encode()))?;
    if let Some(s) = peer.state_bytes(b"or")? {
        codec.add("raw-state-or", moded(0, &s))?;
        codec.add("raw-state-or-cut", moded(0, &s[..s.len() - 3]))?;
    }

    // merge: each peer delta into its key, every state, and all at once.
    let mut merge = Corpus::new(&root, "merge")?;
    let mut all = vec![RESEAL];
    for (i, d) in peer_deltas.iter().enumerate() {
        let mut one = vec![RESEAL, selector(&d.key, i)];
        chunk(&mut one, &d.delta.encode());
        all.extend_from_slice(&one[1..]);
        merge.add(&format!("delta-{i:02}"), one)?;
    }
    merge.add("all-deltas", all)?;
    for (i, k) in seeds::TYPED_KEYS.iter().enumerate() {
        if let Some(s) = peer.state_bytes(k)? {
            let mut one = vec![RESEAL, i as u8];
            chunk(&mut one, &s);
            merge.add(&format!("state-{}", String::from_utf8_lossy(k)), one)?;
        }
    }
    let mut raw = vec![0, selector(b"gc", 0)];
    chunk(&mut raw, &peer_deltas[0].delta.encode());
    merge.add("raw-delta", raw)?;

    // sync_session and sync_message: real sessions, the fixture in either
    // role, with each configuration the mode byte selects, against the
    // peer, an empty replica and a replica with many keys.
    let mut session = Corpus::new(&root, "sync_session")?;
    let mut message = Corpus::new(&root, "sync_message")?;
    let configs = [
        (0u8, Config::default()),
        (
            4,
            Config {
                iblt: false,
                ..Config::default()
            },
        ),
        (
            8,
            Config {
                message_budget: 512,
                ..Config::default()
            },
        ),
    ];
    let mut ffi_sessions = Vec::new();
    for peer_kind in ["peer", "empty", "many"] {
        for (bits, config) in &configs {
            for initiates in [false, true] {
                let me = lab.fixture()?;
                let other = match peer_kind {
                    "peer" => lab.peer()?.0,
                    "empty" => lab.empty(0xB1)?,
                    _ => {
                        let e = lab.empty(0xB2)?;
                        for i in 0..300u32 {
                            e.increment(format!("many{i}").as_bytes(), 1)?;
                        }
                        e
                    }
                };
                let (to_fixture, to_peer) = if initiates {
                    let (to_other, to_me) = record(&me, &other, config)?;
                    (to_me, to_other)
                } else {
                    record(&other, &me, config)?
                };
                let name = format!(
                    "{peer_kind}-{}-{bits}",
                    if initiates { "init" } else { "resp" }
                );
                let mode = RESEAL | bits | if initiates { 2 } else { 0 };
                if let Some(c) = chunks(&to_fixture) {
                    session.add(&name, moded(mode, &c))?;
                    if *bits == 0 {
                        ffi_sessions.push((u8::from(initiates), to_fixture.clone()));
                    }
                }
                if *bits == 8 && peer_kind != "many" {
                    for (i, m) in to_fixture.iter().chain(&to_peer).enumerate() {
                        message.add(&format!("{name}-{i:02}"), [&[RESEAL, 0][..], m].concat())?;
                    }
                }
            }
        }
    }
    if let Some(first) = record(&lab.fixture()?, &lab.empty(0xB3)?, &Config::default())?
        .0
        .first()
    {
        message.add("raw-summary", [&[0, 0][..], first].concat())?;
        message.add("limit-summary", [&[RESEAL, 1][..], first].concat())?;
    }

    // changes: pages of the peer's feed, cursors and tokens of the fixture.
    let mut changes = Corpus::new(&root, "changes")?;
    let mut pages = Vec::new();
    let mut cursor = CausalContext::new();
    loop {
        let p = peer.changes_since(&cursor, 6)?;
        let Some(c) = p.changes else { break };
        pages.push(c.encode());
        cursor = p.next;
    }
    for (i, p) in pages.iter().enumerate() {
        let mut v = vec![RESEAL, 0];
        chunk(&mut v, p);
        changes.add(&format!("page-{i}"), v)?;
    }
    let mut in_order = vec![RESEAL];
    for p in pages.iter().rev() {
        in_order.push(0);
        chunk(&mut in_order, p);
    }
    changes.add("pages-reversed", in_order)?;
    let mut half = CausalContext::new();
    half.insert_range(ReplicaId(FIXTURE_REPLICA), 1, 5);
    let cursors = [
        ("empty", CausalContext::new()),
        ("half", half),
        ("all", fixture.context()),
        ("peer", peer.context()),
    ];
    for (name, c) in &cursors {
        for limit in [1u8, 7, 255] {
            let mut v = vec![RESEAL, 1, limit];
            chunk(&mut v, &encode_context(c));
            changes.add(&format!("serve-{name}-{limit}"), v)?;
        }
        let mut v = vec![RESEAL, 2];
        chunk(&mut v, &encode_context(c));
        changes.add(&format!("token-{name}"), v)?;
        let mut v = vec![RESEAL, 3, 0xB0];
        chunk(&mut v, &encode_context(c));
        v.push(4);
        changes.add(&format!("ack-{name}"), v)?;
    }
    let mut v = vec![RESEAL, 2];
    chunk(
        &mut v,
        &encode_context(&converge::token_of(&fixture_deltas[..3])),
    );
    changes.add("token-of-writes", v)?;

    // ffi: the same payloads through the C entry points.
    let mut ffi = Corpus::new(&root, "ffi")?;
    for (i, d) in peer_deltas.iter().enumerate().step_by(3) {
        let mut v = vec![RESEAL, 0];
        chunk(&mut v, &d.key);
        chunk(&mut v, &d.delta.encode());
        ffi.add(&format!("merge-{i:02}"), v)?;
    }
    for (i, p) in pages.iter().enumerate().take(3) {
        let mut v = vec![RESEAL, 1];
        chunk(&mut v, p);
        ffi.add(&format!("page-{i}"), v)?;
    }
    for (name, c) in &cursors {
        let mut v = vec![RESEAL, 2];
        chunk(&mut v, &encode_context(c));
        v.push(5);
        ffi.add(&format!("cursor-{name}"), v)?;
    }
    let mut v = vec![RESEAL, 3];
    chunk(&mut v, &peer_deltas[3].delta.encode());
    chunk(&mut v, &encode_context(&peer.context()));
    ffi.add("tokens", v)?;
    let mut v = vec![RESEAL, 4, 3];
    for d in &peer_deltas[..3] {
        chunk(&mut v, &d.delta.encode());
    }
    ffi.add("packed-deltas", v)?;
    for (i, (initiates, msgs)) in ffi_sessions.iter().enumerate() {
        if msgs.len() < 8 {
            if let Some(c) = chunks(msgs) {
                let mut v = vec![RESEAL, 5, *initiates, msgs.len() as u8];
                v.extend_from_slice(&c);
                ffi.add(&format!("session-{i}"), v)?;
            }
        }
    }
    drop(fixture);
    drop(peer);
    println!("seed corpora written under {}", root.display());
    Ok(())
}
