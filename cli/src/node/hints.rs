//! Hinted handoff: writes this node holds for a replica that was down
//! (sloppy quorum, `--sloppy-quorum`).
//!
//! A hint is one file, `DATA/hints/<replica id>/<sequence>.hint`, written
//! to a temporary name, fsynced and renamed: a hint the node acknowledged
//! survives `kill -9`. Its content: a format version (1), the partition
//! (u32 big-endian), the key's length (u32 big-endian), the key, then the
//! key's full state after the write (FORMAT.md): joining a full state
//! never waits for causal dependencies, so a delivered hint is visible at
//! once. Hints are bounded (`--max-hints`, `--max-hint-bytes`): past the
//! bound a stand-in refuses (`RESOURCE_EXHAUSTED`) and does not count
//! toward the write's quorum. The delivery loop hands them to their
//! replica when membership reports it alive, and deletes each once the
//! replica joined it.

use converge::ReplicaId;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const VERSION: u8 = 1;

/// A hint read back from its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// Its file.
    pub file: PathBuf,
    /// The partition of the key.
    pub partition: u32,
    /// The key.
    pub key: Vec<u8>,
    /// The key's encoded full state.
    pub state: Vec<u8>,
}

/// Why a hint was not stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HintError {
    /// The bound is reached.
    #[error("hint store full ({hints} hints, {bytes} bytes; limits {max_hints}, {max_bytes})")]
    Full {
        /// Hints held.
        hints: u64,
        /// Their bytes.
        bytes: u64,
        /// `--max-hints`.
        max_hints: u64,
        /// `--max-hint-bytes`.
        max_bytes: u64,
    },
    /// The file could not be written.
    #[error("hint file: {0}")]
    Io(#[from] std::io::Error),
}

/// Per target (hints, bytes), and the next file's sequence number.
type Counts = (BTreeMap<ReplicaId, (u64, u64)>, u64);

/// The hints of a node.
pub struct Hints {
    dir: PathBuf,
    max_hints: u64,
    max_bytes: u64,
    /// Per target: (hints, bytes); and the next sequence number.
    state: Mutex<Counts>,
}

fn encode(partition: u32, key: &[u8], state: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(9 + key.len() + state.len());
    b.push(VERSION);
    b.extend_from_slice(&partition.to_be_bytes());
    b.extend_from_slice(&(key.len() as u32).to_be_bytes());
    b.extend_from_slice(key);
    b.extend_from_slice(state);
    b
}

fn decode(file: PathBuf, b: &[u8]) -> Option<Hint> {
    if b.first() != Some(&VERSION) || b.len() < 9 {
        return None;
    }
    let partition = u32::from_be_bytes(b[1..5].try_into().ok()?);
    let klen = u32::from_be_bytes(b[5..9].try_into().ok()?) as usize;
    let key = b.get(9..9 + klen)?.to_vec();
    let state = b.get(9 + klen..)?.to_vec();
    Some(Hint {
        file,
        partition,
        key,
        state,
    })
}

impl Hints {
    /// The hints under `data/hints` (counted at start).
    pub fn open(data: &Path, max_hints: u64, max_bytes: u64) -> std::io::Result<Hints> {
        let dir = data.join("hints");
        std::fs::create_dir_all(&dir)?;
        let mut per = BTreeMap::new();
        let mut next = 0u64;
        for target in std::fs::read_dir(&dir)? {
            let target = target?;
            let Some(id) = parse_id(&target.file_name().to_string_lossy()) else {
                continue;
            };
            for f in std::fs::read_dir(target.path())? {
                let f = f?;
                let name = f.file_name().to_string_lossy().into_owned();
                if let Some(seq) = name
                    .strip_suffix(".hint")
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    let e: &mut (u64, u64) = per.entry(id).or_default();
                    e.0 += 1;
                    e.1 += f.metadata()?.len();
                    next = next.max(seq + 1);
                } else if name.ends_with(".tmp") {
                    // A hint whose write a crash interrupted was never
                    // acknowledged.
                    let _ = std::fs::remove_file(f.path());
                }
            }
        }
        Ok(Hints {
            dir,
            max_hints,
            max_bytes,
            state: Mutex::new((per, next)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keep a hint for `target` (blocking file I/O: call off the async
    /// workers). Returns once it is durable.
    pub fn store(
        &self,
        target: ReplicaId,
        partition: u32,
        key: &[u8],
        state: &[u8],
    ) -> Result<(), HintError> {
        let bytes = encode(partition, key, state);
        let seq = {
            let mut st = self.lock();
            let (hints, total) =
                st.0.values()
                    .fold((0, 0), |(h, b), (h2, b2)| (h + h2, b + b2));
            if hints + 1 > self.max_hints || total + bytes.len() as u64 > self.max_bytes {
                return Err(HintError::Full {
                    hints,
                    bytes: total,
                    max_hints: self.max_hints,
                    max_bytes: self.max_bytes,
                });
            }
            // Reserve the space now; released if the write fails.
            let e = st.0.entry(target).or_default();
            e.0 += 1;
            e.1 += bytes.len() as u64;
            st.1 += 1;
            st.1 - 1
        };
        let written = (|| {
            let dir = self.dir.join(target.to_string());
            std::fs::create_dir_all(&dir)?;
            let tmp = dir.join(format!("{seq:020}.tmp"));
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, dir.join(format!("{seq:020}.hint")))?;
            std::fs::File::open(&dir)?.sync_all()
        })();
        if let Err(e) = written {
            let mut st = self.lock();
            if let Some(c) = st.0.get_mut(&target) {
                c.0 -= 1;
                c.1 -= bytes.len() as u64;
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Targets with hints and their (count, bytes).
    pub fn pending(&self) -> BTreeMap<ReplicaId, (u64, u64)> {
        self.lock()
            .0
            .iter()
            .filter(|(_, (n, _))| *n > 0)
            .map(|(r, c)| (*r, *c))
            .collect()
    }

    /// Up to `limit` hints for `target`, oldest first (blocking I/O).
    pub fn load(&self, target: ReplicaId, limit: usize) -> std::io::Result<Vec<Hint>> {
        let dir = self.dir.join(target.to_string());
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|f| f.ok().map(|f| f.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "hint"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        files.sort();
        files.truncate(limit);
        let mut out = Vec::new();
        for f in files {
            let b = std::fs::read(&f)?;
            match decode(f.clone(), &b) {
                Some(h) => out.push(h),
                None => {
                    tracing::warn!(file = %f.display(), "damaged hint file removed");
                    self.remove(target, &f, b.len() as u64)?;
                }
            }
        }
        Ok(out)
    }

    /// A hint was delivered: delete its file.
    pub fn delivered(&self, target: ReplicaId, hint: &Hint) -> std::io::Result<()> {
        let len = encode(hint.partition, &hint.key, &hint.state).len() as u64;
        self.remove(target, &hint.file, len)
    }

    fn remove(&self, target: ReplicaId, file: &Path, len: u64) -> std::io::Result<()> {
        std::fs::remove_file(file)?;
        let mut st = self.lock();
        if let Some(c) = st.0.get_mut(&target) {
            c.0 = c.0.saturating_sub(1);
            c.1 = c.1.saturating_sub(len);
        }
        Ok(())
    }
}

/// A replica id from its 32 hex digits.
pub fn parse_id(s: &str) -> Option<ReplicaId> {
    (s.len() == 32)
        .then(|| u128::from_str_radix(s, 16).ok())
        .flatten()
        .map(ReplicaId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_survive_a_reopen_and_are_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = ReplicaId(0xabc);
        let h = Hints::open(dir.path(), 2, 1 << 20).expect("open");
        h.store(a, 3, b"key", b"state-1").expect("first");
        h.store(a, 3, b"key2", b"state-2").expect("second");
        assert!(matches!(
            h.store(a, 3, b"key3", b"x"),
            Err(HintError::Full { hints: 2, .. })
        ));
        drop(h);
        // A crash mid-write leaves a .tmp file: not a hint.
        std::fs::write(
            dir.path().join("hints").join(a.to_string()).join("9.tmp"),
            b"x",
        )
        .expect("tmp");
        let h = Hints::open(dir.path(), 2, 1 << 20).expect("reopen");
        assert_eq!(h.pending().get(&a).map(|c| c.0), Some(2));
        let got = h.load(a, 10).expect("load");
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].partition, &got[0].key[..], &got[0].state[..]),
            (3, &b"key"[..], &b"state-1"[..])
        );
        h.delivered(a, &got[0]).expect("delivered");
        assert_eq!(h.pending().get(&a).map(|c| c.0), Some(1));
        // Room again.
        h.store(a, 1, b"k", b"s").expect("room");
        assert_eq!(h.load(a, 10).expect("load").len(), 2);
    }

    #[test]
    fn a_damaged_hint_file_is_dropped_not_delivered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = ReplicaId(7);
        let h = Hints::open(dir.path(), 10, 1 << 20).expect("open");
        h.store(a, 0, b"key", b"s").expect("store");
        let f = dir
            .path()
            .join("hints")
            .join(a.to_string())
            .join(format!("{:020}.hint", 0));
        std::fs::write(&f, [9u8, 1, 2]).expect("damage");
        assert!(h.load(a, 10).expect("load").is_empty());
        assert!(!f.exists());
    }
}
