//! The demo: two replicas, a partition, and convergence.

use converge::{sync, CausalContext, Engine, KeyedDelta, Options, ReplicaId, Result, Value};
use std::path::PathBuf;

/// A human-readable rendering of a value.
pub fn show(v: &Value) -> String {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match v {
        Value::Counter(n) => n.to_string(),
        Value::Set(set) => {
            let m: Vec<String> = set.members.iter().map(|e| s(e)).collect();
            format!("{{{}}}", m.join(", "))
        }
        Value::Register(None) => "(unset)".into(),
        Value::Register(Some(w)) => format!("{:?} (written by {})", s(&w.value), w.replica),
        Value::Mv(mv) => {
            let m: Vec<String> = mv
                .siblings
                .iter()
                .map(|x| format!("{:?}", s(&x.value)))
                .collect();
            if m.len() == 1 {
                m[0].clone()
            } else {
                format!("{} siblings: [{}]", m.len(), m.join(", "))
            }
        }
    }
}

struct Replica {
    name: &'static str,
    engine: Engine,
    outbox: Vec<KeyedDelta>,
}

impl Replica {
    fn open(name: &'static str, dir: PathBuf, id: u128) -> Result<Replica> {
        let engine = Engine::open(dir, Options::with_replica(ReplicaId(id)))?;
        Ok(Replica {
            name,
            engine,
            outbox: Vec::new(),
        })
    }

    /// Report a local operation and keep its delta (if it made one) to
    /// ship.
    fn did(&mut self, what: &str, d: impl Into<Option<KeyedDelta>>) {
        println!("  {:<2} {what}", self.name);
        self.outbox.extend(d.into());
    }

    fn value(&self, key: &[u8]) -> Result<String> {
        Ok(match self.engine.read(key)? {
            Some(v) => show(&v),
            None => "(absent)".into(),
        })
    }

    /// Deliver everything in the outbox to `to`.
    fn ship(&mut self, to: &Replica) -> Result<usize> {
        let n = self.outbox.len();
        for d in self.outbox.drain(..) {
            to.engine.merge(&d.key, &d.delta.encode())?;
        }
        Ok(n)
    }
}

fn both(a: &Replica, b: &Replica, key: &[u8]) -> Result<()> {
    println!(
        "  {:<14} A = {:<34} B = {}",
        String::from_utf8_lossy(key),
        a.value(key)?,
        b.value(key)?
    );
    Ok(())
}

fn heal(a: &mut Replica, b: &mut Replica) -> Result<()> {
    let n1 = a.ship(b)?;
    let n2 = b.ship(a)?;
    println!("  -- partition heals: A sends {n1} deltas, B sends {n2} --");
    Ok(())
}

/// Run the demo in a fresh temporary directory.
pub fn run() -> Result<()> {
    let base = std::env::temp_dir().join(format!("converge-demo-{}", std::process::id()));
    let result = run_in(&base);
    let _ = std::fs::remove_dir_all(&base);
    result
}

fn run_in(base: &std::path::Path) -> Result<()> {
    let mut a = Replica::open("A", base.join("a"), 0xA)?;
    let mut b = Replica::open("B", base.join("b"), 0xB)?;
    println!(
        "Two replicas, A and B, each its own RocksDB store under {}",
        base.display()
    );

    println!("\n1. Counters: concurrent increments both count");
    a.did("likes += 3", a.engine.increment(b"likes", 3)?);
    b.did("likes += 4", b.engine.increment(b"likes", 4)?);
    both(&a, &b, b"likes")?;
    heal(&mut a, &mut b)?;
    both(&a, &b, b"likes")?;

    println!("\n2. Shopping cart (OR-Set): edits on both sides of a partition");
    a.did("cart += milk", a.engine.orset_add(b"cart", b"milk")?);
    heal(&mut a, &mut b)?;
    println!("  -- network partition --");
    a.did("cart += tv", a.engine.orset_add(b"cart", b"tv")?);
    b.did("cart += phone", b.engine.orset_add(b"cart", b"phone")?);
    a.did(
        "cart -= milk",
        a.engine.orset_remove(b"cart", b"milk", None)?,
    );
    b.did(
        "cart += milk (again, concurrently)",
        b.engine.orset_add(b"cart", b"milk")?,
    );
    both(&a, &b, b"cart")?;
    heal(&mut a, &mut b)?;
    both(&a, &b, b"cart")?;
    println!("  both new items survive; the concurrent re-add of milk wins over the remove");

    println!("\n3. Document title (MV register): a conflict becomes siblings");
    a.did(
        "title := \"Plan\"",
        a.engine
            .mv_write(b"title", b"Plan", &CausalContext::new())?,
    );
    b.did(
        "title := \"Roadmap\"",
        b.engine
            .mv_write(b"title", b"Roadmap", &CausalContext::new())?,
    );
    heal(&mut a, &mut b)?;
    both(&a, &b, b"title")?;
    let read = a.engine.mv_read(b"title")?;
    a.did(
        "title := \"Plan & Roadmap\" (a write based on the read of both siblings)",
        a.engine
            .mv_write(b"title", b"Plan & Roadmap", &read.context)?,
    );
    a.ship(&b)?;
    both(&a, &b, b"title")?;

    println!("\n4. Anti-entropy: B misses deltas, a sync session repairs it");
    for i in 0..500u32 {
        let key = format!("page:{i}:views");
        b.engine.merge(
            key.as_bytes(),
            &a.engine.increment(key.as_bytes(), 1)?.delta.encode(),
        )?;
    }
    for i in 0..5u32 {
        a.did(
            &format!("page:{i}:views += 10 (delta lost in transit)"),
            a.engine
                .increment(format!("page:{i}:views").as_bytes(), 10)?,
        );
    }
    a.outbox.clear();
    b.did(
        "tags += urgent (delta lost in transit)",
        b.engine.orset_add(b"tags", b"urgent")?,
    );
    b.outbox.clear();
    both(&a, &b, b"page:0:views")?;
    let ((_, sa), (outcome, sb)) =
        sync::sync_engines(&a.engine, &b.engine, sync::Config::default())
            .map_err(|e| converge::Error::InvalidArgument(e.to_string()))?;
    println!(
        "  -- sync session ({} keys each after): {:?}, {} messages, A sent {} states, B sent {} states,",
        a.engine.root()?.count,
        outcome,
        sa.messages_sent + sb.messages_sent,
        sa.states_sent,
        sb.states_sent
    );
    println!(
        "     {} bytes of reconciliation metadata in all --",
        sa.metadata_sent() + sb.metadata_sent()
    );
    both(&a, &b, b"page:0:views")?;
    both(&a, &b, b"tags")?;

    let (ra, rb) = (a.engine.root()?, b.engine.root()?);
    println!(
        "\nAnti-entropy roots: A {:032x} ({} keys)",
        ra.hash, ra.count
    );
    println!("                    B {:032x} ({} keys)", rb.hash, rb.count);
    if ra == rb {
        println!("Converged: equal roots, so every key holds byte-equal state on both replicas.");
        Ok(())
    } else {
        Err(converge::Error::Corruption(
            "replicas did not converge".into(),
        ))
    }
}
