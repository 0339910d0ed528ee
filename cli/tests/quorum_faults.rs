//! N=3 W=2 R=2 on five nodes (8 partitions, sloppy quorum on, hints
//! bounded at 4 per node): a replica is `kill -9`ed while a writer runs.
//! No acknowledged write is lost; writes after its failure is detected
//! leave hints on stand-ins, delivered when it returns; what it missed
//! beyond the hints is brought back by read repair (anti-entropy is slowed
//! to once a minute so that it cannot do that work instead).

mod qc;

use converge::codec::decode_state;
use converge_cli::cluster::{Cluster, ClusterOptions};
use converge_cli::proto::quorum_client::QuorumClient;
use converge_cli::proto::{self, read_reply::Value as V};
use qc::{incr, read, value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const KEYS: usize = 12;
const PARTITIONS: u32 = 8;

/// The counter `key` as node `i` holds it itself (Quorum.Fetch).
async fn local_value(cl: &Cluster, i: usize, key: &str) -> Result<Option<u64>, String> {
    let mut c = QuorumClient::connect(format!("http://{}", cl.nodes[i].listen))
        .await
        .map_err(|e| e.to_string())?;
    let r = c
        .fetch(proto::FetchRequest {
            protocol_version: 1,
            partitions: PARTITIONS,
            partition: converge_cli::node::placement::partition_of(key.as_bytes(), PARTITIONS),
            key: key.as_bytes().to_vec(),
        })
        .await
        .map_err(|s| s.to_string())?
        .into_inner();
    if !r.held {
        return Ok(None);
    }
    if r.state.is_empty() {
        return Ok(Some(0));
    }
    let s = decode_state(&r.state).map_err(|e| e.to_string())?;
    Ok(Some(match converge::Value::of(&s) {
        converge::Value::Counter(n) => n as u64,
        _ => u64::MAX,
    }))
}

#[derive(Default)]
struct Log {
    acked: BTreeMap<String, u64>,
    tried: BTreeMap<String, u64>,
}

async fn scenario(cl: &mut Cluster) -> Result<(), String> {
    for i in 0..5 {
        cl.wait_alive(i, 4, WAIT).await?;
    }
    for i in 0..5 {
        qc::wait_ready(cl, i, WAIT).await?;
    }
    let ids = qc::ids(cl, 5).await?;
    let mut c0 = cl.client(0, WAIT).await?;
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    // The victim: the first replica of k0.
    let reps = qc::replicas_of(&mut c0, &keys[0]).await;
    let victim = ids
        .iter()
        .position(|id| *id == reps[0])
        .ok_or("victim not found")?;
    // A node that is not a replica of k0's partition refuses its
    // deliveries (a sender with another view would count it toward W):
    // nothing joined.
    let outsider = ids
        .iter()
        .position(|id| !reps.contains(id))
        .ok_or("every node replicates k0")?;
    let state = {
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let e = converge::Engine::open(tmp.path().join("x"), converge::Options::default())
            .map_err(|e| e.to_string())?;
        e.increment(b"k0", 1000).map_err(|e| e.to_string())?;
        converge::codec::encode_state(
            &e.state(b"k0")
                .map_err(|e| e.to_string())?
                .ok_or("no state")?,
        )
    };
    let mut po = QuorumClient::connect(format!("http://{}", cl.nodes[outsider].listen))
        .await
        .map_err(|e| e.to_string())?;
    let got = po
        .deliver(proto::DeliverRequest {
            protocol_version: 1,
            partitions: PARTITIONS,
            partition: converge_cli::node::placement::partition_of(b"k0", PARTITIONS),
            entries: vec![proto::Entry {
                key: b"k0".to_vec(),
                item: state,
            }],
            hint_for: Vec::new(),
        })
        .await;
    match &got {
        Err(s) if s.code() == tonic::Code::FailedPrecondition => {}
        other => {
            return Err(format!(
                "Deliver to a non-replica (node {outsider}): {other:?}"
            ))
        }
    }
    let coordinators: Vec<usize> = (0..5).filter(|i| *i != victim).collect();
    let mut clients = Vec::new();
    for &i in &coordinators {
        clients.push(cl.client(i, WAIT).await?);
    }
    eprintln!("victim: node {victim} ({})", ids[victim]);

    // A writer over every key, through the four other nodes.
    let log = Arc::new(Mutex::new(Log::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (log, stop, keys, mut clients) =
            (log.clone(), stop.clone(), keys.clone(), clients.clone());
        tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = &keys[i % keys.len()];
                let c = &mut clients[i % 4];
                *log.lock().unwrap().tried.entry(key.clone()).or_default() += 1;
                if incr(c, key, 1, 3, 2).await.is_ok() {
                    *log.lock().unwrap().acked.entry(key.clone()).or_default() += 1;
                }
                i += 1;
            }
            i
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    cl.kill(victim);
    // Until the failure is detected, then well beyond it.
    let mut c1 = clients[0].clone();
    let victim_id = ids[victim].clone();
    qc::eventually("the victim declared down", WAIT, || {
        let (mut c1, v) = (c1.clone(), victim_id.clone());
        async move {
            let s = qc::status(&mut c1).await;
            s.members
                .iter()
                .any(|m| m.replica_id == v && m.state == "down")
                .then_some(())
        }
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.await.map_err(|e| e.to_string())?;
    let (acked, tried) = {
        let l = log.lock().unwrap();
        (l.acked.clone(), l.tried.clone())
    };
    let failed = tried.values().sum::<u64>() - acked.values().sum::<u64>();
    eprintln!("{writes} writes, {failed} failed, acked per key {acked:?}");
    // A write is ambiguous (and fails) only if it was in flight at the
    // victim when it died, or sent on a pooled connection to it before
    // the reset was noticed (once per forwarding coordinator); every other
    // write finds W=2 replicas: a refused forward goes to the next replica.
    if failed > 5 {
        return Err(format!("{failed} writes failed around the kill"));
    }
    if acked.values().sum::<u64>() < 20 {
        return Err(format!("too few acknowledged writes: {acked:?}"));
    }
    // Hints wait on the stand-ins.
    let mut hinted = 0;
    let mut holder = None;
    for &i in &coordinators {
        let mut c = cl.client(i, WAIT).await?;
        let n = qc::status(&mut c)
            .await
            .hints
            .iter()
            .filter(|h| h.replica_id == ids[victim])
            .map(|h| h.hints)
            .sum::<u64>();
        if n > 0 && holder.is_none() {
            holder = Some((i, n));
        }
        hinted += n;
    }
    let Some((holder, held)) = holder else {
        return Err("no hints were kept for the dead replica".into());
    };
    // A stand-in killed with its hints keeps them: they are files.
    cl.kill(holder);
    cl.spawn(holder).map_err(|e| e.to_string())?;
    let mut ch = cl.client(holder, WAIT).await?;
    let kept: u64 = qc::status(&mut ch)
        .await
        .hints
        .iter()
        .map(|h| h.hints)
        .sum();
    if kept != held {
        return Err(format!(
            "node {holder} held {held} hints before kill -9, {kept} after"
        ));
    }
    for &i in &coordinators {
        cl.wait_alive(i, 3, WAIT).await?;
    }
    eprintln!("{hinted} hints kept; node {holder} kept its {held} across kill -9");
    // No acknowledged write is lost (R=2 of the two live replicas).
    for k in &keys {
        let got = value(
            &read(&mut c1, k, 3, 2)
                .await
                .map_err(|s| format!("{k}: {s}"))?,
        );
        let (a, t) = (
            acked.get(k).copied().unwrap_or(0),
            tried.get(k).copied().unwrap_or(0),
        );
        if got < a || got > t {
            return Err(format!("{k}: read {got}, acknowledged {a}, tried {t}"));
        }
    }

    // The victim returns: its hints are delivered.
    cl.spawn(victim).map_err(|e| e.to_string())?;
    for i in 0..5 {
        cl.wait_alive(i, 4, WAIT).await?;
    }
    qc::eventually("hints delivered", WAIT, || {
        let cl = &*cl;
        let coordinators = coordinators.clone();
        async move {
            let mut left = 0;
            let mut delivered = 0;
            for &i in &coordinators {
                let mut c = cl.client(i, WAIT).await.ok()?;
                left += qc::status(&mut c)
                    .await
                    .hints
                    .iter()
                    .map(|h| h.hints)
                    .sum::<u64>();
                delivered += qc::metric(cl, i, "converge_hints_delivered_total").await;
            }
            (left == 0 && delivered > 0).then_some(())
        }
    })
    .await?;
    // It is behind on some keys (more writes than hints); R=3 reads see
    // it and repair it.
    let mut behind = 0;
    for k in &keys {
        let joined = read(&mut c1, k, 3, 3)
            .await
            .map_err(|s| format!("{k} R=3: {s}"))?;
        behind += joined.stale;
        let want = value(&joined);
        if want < acked.get(k).copied().unwrap_or(0) {
            return Err(format!("{k}: R=3 read {want} < acknowledged"));
        }
        let reps = qc::replicas_of(&mut c1, k).await;
        if let Some(v) = ids
            .iter()
            .position(|id| reps.contains(id) && *id == ids[victim])
        {
            let cl = &*cl;
            qc::eventually(
                &format!("read repair of {k} on the victim"),
                WAIT,
                || async move { (local_value(cl, v, k).await.ok()?? >= want).then_some(()) },
            )
            .await?;
        }
    }
    let repairs: u64 = {
        let mut n = 0;
        for &i in &coordinators {
            n += qc::metric(cl, i, "converge_read_repairs_total").await;
        }
        n
    };
    eprintln!("replicas behind at the R=3 reads: {behind}; read repairs: {repairs}");
    if behind == 0 || repairs == 0 {
        return Err(format!(
            "expected the restarted replica behind and repaired: {behind} behind, {repairs} repairs"
        ));
    }
    let _ = V::Counter(String::new());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_write_loses_nothing_and_is_repaired() {
    let opts = ClusterOptions {
        nodes: 5,
        proxied: false,
        probe_ms: 200,
        anti_entropy_ms: 60_000,
        extra: qc::args(&[
            "--partitions",
            "8",
            "--replicas",
            "3",
            "--w",
            "2",
            "--r",
            "2",
            "--sloppy-quorum",
            "--max-hints",
            "4",
            "--collect-ms",
            "0",
            "--rebalance-ms",
            "300",
            "--rpc-timeout-ms",
            "2000",
        ]),
        ..ClusterOptions::default()
    };
    qc::run(opts, 2, scenario).await;
}

/// A quorum delete removes what a read quorum holds, not only what its
/// applying replica holds: node 2 misses an OR-Set add while it is down
/// (no hints, anti-entropy once a minute), then coordinates (and applies)
/// the delete of that set; the add is gone on every replica.
async fn delete_scenario(cl: &mut Cluster) -> Result<(), String> {
    for i in 0..3 {
        cl.wait_alive(i, 2, WAIT).await?;
        qc::wait_ready(cl, i, WAIT).await?;
    }
    let mut c1 = cl.client(1, WAIT).await?;
    cl.kill(2);
    let add = |elem: &str| proto::QuorumWriteRequest {
        ops: vec![proto::Op {
            key: b"cart".to_vec(),
            kind: Some(proto::op::Kind::OrsetAdd(elem.as_bytes().to_vec())),
        }],
        n: 3,
        w: 2,
        ack_timeout_ms: 5000,
    };
    c1.quorum_write(add("socks"))
        .await
        .map_err(|s| format!("add while node 2 is down: {s}"))?;
    cl.spawn(2).map_err(|e| e.to_string())?;
    for i in 0..3 {
        cl.wait_alive(i, 2, WAIT).await?;
    }
    if local_set(cl, 2, "cart")
        .await?
        .is_some_and(|m| !m.is_empty())
    {
        return Err("node 2 should have missed the add".into());
    }
    let mut c2 = cl.client(2, WAIT).await?;
    let del = c2
        .quorum_write(proto::QuorumWriteRequest {
            ops: vec![proto::Op {
                key: b"cart".to_vec(),
                kind: Some(proto::op::Kind::Delete(proto::Delete::default())),
            }],
            n: 3,
            w: 3,
            ack_timeout_ms: 5000,
        })
        .await
        .map_err(|s| format!("delete on node 2: {s}"))?
        .into_inner();
    if del.token.is_empty() {
        return Err("the delete was no operation: it did not see the add".into());
    }
    for i in 0..3 {
        let mut c = cl.client(i, WAIT).await?;
        let r = read(&mut c, "cart", 3, 3)
            .await
            .map_err(|s| s.to_string())?;
        if r.found {
            return Err(format!("node {i} reads the deleted set: {r:?}"));
        }
    }
    Ok(())
}

/// The OR-Set `key` as node `i` holds it itself (`None`: never written).
async fn local_set(cl: &Cluster, i: usize, key: &str) -> Result<Option<Vec<Vec<u8>>>, String> {
    let mut c = QuorumClient::connect(format!("http://{}", cl.nodes[i].listen))
        .await
        .map_err(|e| e.to_string())?;
    let r = c
        .fetch(proto::FetchRequest {
            protocol_version: 1,
            partitions: 2,
            partition: converge_cli::node::placement::partition_of(key.as_bytes(), 2),
            key: key.as_bytes().to_vec(),
        })
        .await
        .map_err(|s| s.to_string())?
        .into_inner();
    if r.state.is_empty() {
        return Ok(None);
    }
    let s = decode_state(&r.state).map_err(|e| e.to_string())?;
    Ok(match converge::Value::of(&s) {
        converge::Value::Set(set) => Some(set.members),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_delete_removes_what_a_read_quorum_holds() {
    let opts = ClusterOptions {
        nodes: 3,
        proxied: false,
        probe_ms: 200,
        anti_entropy_ms: 60_000,
        extra: qc::args(&[
            "--partitions",
            "2",
            "--replicas",
            "3",
            "--collect-ms",
            "0",
            "--rebalance-ms",
            "300",
            "--rpc-timeout-ms",
            "2000",
        ]),
        ..ClusterOptions::default()
    };
    qc::run(opts, 6, delete_scenario).await;
}
