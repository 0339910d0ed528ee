//! The engines of a node, one per partition it holds.
//!
//! Single layout (`--partitions 1`, the default): one engine in the data
//! directory, partition 0, always held and filled. Partitioned layout
//! (`--partitions Q`, Q > 1): the data directory holds a small node engine
//! (the node's identity; no data) and one engine per partition held,
//! `DATA/p0007/`, opened with small RocksDB buffers; `DATA/p0007.ready`
//! marks a partition filled by anti-entropy with a replica (until then it
//! takes writes but does not answer quorum reads). `DATA/partitions`
//! records Q: a node never opens a store with another partition count.
//!
//! Each partition engine has its own replica id (generated when its
//! directory is created): a partition dropped and taken again later starts
//! a new history, so its new operations can never collide with dots the
//! other replicas saw from the old one.

use converge::{Engine, Options};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tonic::Status;

/// Options of a partition engine: the node's durability, small caches and
/// memtables (a node holds many), no changes feed (a quorum write ships
/// its deltas itself; anti-entropy repairs the rest).
pub fn partition_options(node: &Options) -> Options {
    Options {
        replica_id: None,
        block_cache_bytes: 4 << 20,
        write_buffer_bytes: 2 << 20,
        background_jobs: 1,
        type_cache_entries: 4096,
        state_cache_bytes: 2 << 20,
        changes_feed: false,
        ..node.clone()
    }
}

/// The partition engines of a node.
pub struct Parts {
    /// Partitions of the cluster.
    pub q: u32,
    root: PathBuf,
    options: Options,
    /// The single layout's engine (also in `open` as partition 0).
    single: Option<Arc<Engine>>,
    open: Mutex<BTreeMap<u32, Arc<Engine>>>,
    ready: Mutex<BTreeSet<u32>>,
    /// Partitions being closed and removed (refuse to reopen meanwhile).
    closing: Mutex<BTreeSet<u32>>,
    /// Held while an engine is being opened: two requests for a partition
    /// not held yet must not race for RocksDB's lock.
    opening: tokio::sync::Mutex<()>,
}

/// A partition's directory.
fn dir_of(root: &Path, p: u32) -> PathBuf {
    root.join(format!("p{p:04}"))
}

fn ready_file(root: &Path, p: u32) -> PathBuf {
    root.join(format!("p{p:04}.ready"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Check (or record, for a new store) the partition count in
/// `DATA/partitions`; `Err` says why the store cannot be opened.
pub fn check_layout(root: &Path, q: u32) -> Result<(), String> {
    let file = root.join("partitions");
    match std::fs::read_to_string(&file) {
        Ok(s) => match s.trim().parse::<u32>() {
            Ok(have) if have == q => Ok(()),
            Ok(have) => Err(format!(
                "the store in {} was made with --partitions {have}, not {q}: \
                 the partition count is fixed for the life of a cluster",
                root.display()
            )),
            Err(_) => Err(format!("{} is damaged", file.display())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // An existing single-layout store has data but no file.
            if q > 1 && root.join("CURRENT").exists() {
                return Err(format!(
                    "the store in {} holds a single-partition store: \
                     it cannot be opened with --partitions {q}",
                    root.display()
                ));
            }
            std::fs::create_dir_all(root).map_err(|e| e.to_string())?;
            std::fs::write(&file, format!("{q}\n")).map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("{}: {e}", file.display())),
    }
}

impl Parts {
    /// The partitions of a node whose node engine is `engine`; opens the
    /// partition engines found on disk (partitioned layout).
    pub fn open(
        root: &Path,
        q: u32,
        node: &Options,
        engine: Arc<Engine>,
    ) -> converge::Result<Parts> {
        let parts = Parts {
            q,
            root: root.to_path_buf(),
            options: partition_options(node),
            single: (q <= 1).then(|| engine.clone()),
            open: Mutex::new(BTreeMap::new()),
            ready: Mutex::new(BTreeSet::new()),
            closing: Mutex::new(BTreeSet::new()),
            opening: tokio::sync::Mutex::new(()),
        };
        if q <= 1 {
            lock(&parts.open).insert(0, engine);
            lock(&parts.ready).insert(0);
            return Ok(parts);
        }
        for p in 0..q {
            if dir_of(root, p).join("CURRENT").exists() {
                let e = Engine::open(dir_of(root, p), parts.options.clone())?;
                lock(&parts.open).insert(p, Arc::new(e));
                if ready_file(root, p).exists() {
                    lock(&parts.ready).insert(p);
                }
            }
        }
        Ok(parts)
    }

    /// Whether the node runs the partitioned layout.
    pub fn partitioned(&self) -> bool {
        self.single.is_none()
    }

    /// The engine of partition `p`, if held.
    pub fn get(&self, p: u32) -> Option<Arc<Engine>> {
        lock(&self.open).get(&p).cloned()
    }

    /// Whether `p` is held and filled.
    pub fn is_ready(&self, p: u32) -> bool {
        lock(&self.ready).contains(&p)
    }

    /// The partitions held, with their engines.
    pub fn held(&self) -> Vec<(u32, Arc<Engine>)> {
        lock(&self.open)
            .iter()
            .map(|(p, e)| (*p, e.clone()))
            .collect()
    }

    /// Check a partition number from a peer or a request.
    pub fn check(&self, p: u32) -> Result<(), Status> {
        if p >= self.q.max(1) {
            return Err(Status::invalid_argument(format!(
                "partition {p} does not exist: the cluster has {}",
                self.q.max(1)
            )));
        }
        Ok(())
    }

    /// The engine of `p`, created (empty, not ready) if this node does
    /// not hold it yet.
    pub async fn open_or_create(&self, p: u32) -> Result<Arc<Engine>, Status> {
        self.check(p)?;
        if let Some(e) = self.get(p) {
            return Ok(e);
        }
        let _opening = self.opening.lock().await;
        if let Some(e) = self.get(p) {
            return Ok(e);
        }
        if lock(&self.closing).contains(&p) {
            return Err(Status::unavailable(format!(
                "partition {p} is being handed off from this node"
            )));
        }
        let dir = dir_of(&self.root, p);
        let options = self.options.clone();
        let opened = tokio::task::spawn_blocking(move || Engine::open(dir, options))
            .await
            .map_err(super::status::join)?;
        let e = Arc::new(opened.map_err(super::status::engine)?);
        lock(&self.open).insert(p, e.clone());
        tracing::info!(partition = p, "partition opened");
        Ok(e)
    }

    /// Mark `p` filled (persisted).
    pub fn set_ready(&self, p: u32) -> std::io::Result<()> {
        if self.partitioned() {
            std::fs::write(ready_file(&self.root, p), b"")?;
        }
        lock(&self.ready).insert(p);
        Ok(())
    }

    /// Stop serving partition `p` ahead of its drop: from now on a request
    /// for it is refused (`UNAVAILABLE`, nothing written) until
    /// [`Parts::reattach`] or [`Parts::drop_detached`]. Its engine, if held;
    /// requests that took it before keep it until they finish.
    pub async fn detach(&self, p: u32) -> Option<Arc<Engine>> {
        if !self.partitioned() {
            return None;
        }
        // Not while a request is opening it.
        let _opening = self.opening.lock().await;
        let e = lock(&self.open).remove(&p)?;
        lock(&self.closing).insert(p);
        Some(e)
    }

    /// Serve a detached partition again (its hand-off did not complete).
    pub fn reattach(&self, p: u32, e: Arc<Engine>) {
        lock(&self.open).insert(p, e);
        lock(&self.closing).remove(&p);
    }

    /// Close a detached partition and remove its store (after its
    /// hand-off).
    pub async fn drop_detached(&self, p: u32, engine: Arc<Engine>) -> Result<(), String> {
        if !self.partitioned() {
            return Err("the single layout never drops its engine".into());
        }
        lock(&self.closing).insert(p);
        lock(&self.ready).remove(&p);
        let _ = std::fs::remove_file(ready_file(&self.root, p));
        let result = close(engine, false).await;
        let result = result.and_then(|()| {
            std::fs::remove_dir_all(dir_of(&self.root, p)).map_err(|e| e.to_string())
        });
        lock(&self.closing).remove(&p);
        result
    }

    /// Close every partition engine (shutdown); the single layout's engine
    /// is closed by the node.
    pub async fn close_all(&self) {
        if !self.partitioned() {
            lock(&self.open).clear();
            return;
        }
        let all: Vec<Arc<Engine>> = std::mem::take(&mut *lock(&self.open))
            .into_values()
            .collect();
        for e in all {
            if let Err(err) = close(e, true).await {
                tracing::warn!(error = %err, "closing a partition failed");
            }
        }
    }
}

/// Close an engine once every task released it (at most 10 s; then, if
/// `flush_if_busy`, flush and fsync the WAL instead, else fail).
async fn close(mut engine: Arc<Engine>, flush_if_busy: bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Arc::try_unwrap(engine) {
            Ok(e) => {
                return tokio::task::spawn_blocking(move || e.close())
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            }
            Err(shared) if Instant::now() < deadline => {
                engine = shared;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) if !flush_if_busy => return Err("the partition's engine is still in use".into()),
            Err(shared) => {
                return tokio::task::spawn_blocking(move || {
                    shared.flush()?;
                    shared.sync_wal()
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
            }
        }
    }
}
