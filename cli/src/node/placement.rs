//! Placement: which partition a key belongs to, and which nodes hold a
//! partition.
//!
//! The keyspace is cut into a fixed number Q of partitions (a cluster-wide
//! setting, `--partitions`): a key's partition is its xxh3 hash (fixed
//! seed, stable across Rust releases and machines) modulo Q. A partition
//! is held by the N members of highest rendezvous weight (xxh3 of the
//! partition number and the member's replica id): every node computes the
//! same preference list from the same membership, and adding or removing
//! a member moves only the partitions whose top N it enters or leaves
//! (about N/M of them for M members, i.e. each key moves with probability
//! ≈ 1/M per replica slot).

use converge::ReplicaId;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Seed of the key → partition hash ("converge" in ASCII). Never change
/// it: stored data is laid out by it.
const KEY_SEED: u64 = 0x636f_6e76_6572_6765;
/// Seed of the rendezvous weights.
const NODE_SEED: u64 = 0x7265_6e64_657a_766f;

/// The partition of `key` among `partitions` (0 when there is one).
pub fn partition_of(key: &[u8], partitions: u32) -> u32 {
    if partitions <= 1 {
        return 0;
    }
    (xxh3_64_with_seed(key, KEY_SEED) % u64::from(partitions)) as u32
}

/// The rendezvous weight of `node` for `partition`.
pub fn weight(partition: u32, node: ReplicaId) -> u64 {
    let mut b = [0u8; 20];
    b[..4].copy_from_slice(&partition.to_be_bytes());
    b[4..].copy_from_slice(&node.to_bytes());
    xxh3_64_with_seed(&b, NODE_SEED)
}

/// Every member, most preferred first, for `partition`: the first N hold
/// it; the next ones stand in for them under a sloppy quorum.
pub fn preference(partition: u32, members: &[ReplicaId]) -> Vec<ReplicaId> {
    let mut v: Vec<(u64, ReplicaId)> = members
        .iter()
        .map(|m| (weight(partition, *m), *m))
        .collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v.dedup_by_key(|(_, m)| *m);
    v.into_iter().map(|(_, m)| m).collect()
}

/// The N replicas of `partition` (all members when `n` is 0 or larger).
pub fn replicas(partition: u32, members: &[ReplicaId], n: usize) -> Vec<ReplicaId> {
    let mut p = preference(partition, members);
    if n > 0 {
        p.truncate(n);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(seeds: &[u128]) -> Vec<ReplicaId> {
        seeds.iter().map(|s| ReplicaId(*s)).collect()
    }

    #[test]
    fn the_key_hash_is_pinned() {
        // The layout of stored data depends on these numbers: a change of
        // hash function or seed must fail here, not silently re-shard.
        assert_eq!(partition_of(b"likes", 1), 0);
        let got: Vec<u32> = [&b"likes"[..], b"cart", b"", b"k-000042"]
            .iter()
            .map(|k| partition_of(k, 64))
            .collect();
        assert_eq!(got, [19, 61, 52, 54]);
    }

    proptest! {
        /// The preference list depends on the set of members only: not on
        /// their order, and a member's removal keeps the others' order.
        #[test]
        fn preference_lists_are_stable(
            seeds in proptest::collection::btree_set(any::<u128>(), 2..12),
            partition in 0u32..1024,
        ) {
            let members = ids(&seeds.iter().copied().collect::<Vec<_>>());
            let mut shuffled = members.clone();
            shuffled.reverse();
            let a = preference(partition, &members);
            prop_assert_eq!(&a, &preference(partition, &shuffled));
            prop_assert_eq!(a.len(), members.len());
            let gone = a[0];
            let rest: Vec<ReplicaId> = members.iter().copied().filter(|m| *m != gone).collect();
            let b = preference(partition, &rest);
            prop_assert_eq!(&a[1..], &b[..]);
        }

        /// Adding a member changes a partition's replica set only by
        /// putting the new member into it.
        #[test]
        fn a_new_member_only_enters(
            seeds in proptest::collection::btree_set(any::<u128>(), 4..10),
            new in any::<u128>(),
            partition in 0u32..4096,
            n in 1usize..4,
        ) {
            prop_assume!(!seeds.contains(&new));
            let members = ids(&seeds.iter().copied().collect::<Vec<_>>());
            let before = replicas(partition, &members, n);
            let mut more = members.clone();
            more.push(ReplicaId(new));
            let after = replicas(partition, &more, n);
            let left: Vec<_> = before.iter().filter(|m| !after.contains(m)).collect();
            let entered: Vec<_> = after.iter().filter(|m| !before.contains(m)).collect();
            prop_assert!(left.len() <= 1);
            prop_assert_eq!(left.len(), entered.len());
            if let Some(e) = entered.first() {
                prop_assert_eq!(**e, ReplicaId(new));
            }
        }
    }

    /// Adding a sixth node to five moves about 1/6 of the keys' primary
    /// replica (and N/6 of the replica slots), spread over every partition.
    #[test]
    fn adding_a_node_moves_about_one_mth_of_the_keys() {
        let q = 256;
        let five = ids(&[11, 22, 33, 44, 55]);
        let mut six = five.clone();
        six.push(ReplicaId(66));
        let keys = 60_000usize;
        let mut primary_moved = 0usize;
        let mut slots_moved = 0usize;
        for i in 0..keys {
            let key = format!("key-{i}");
            let p = partition_of(key.as_bytes(), q);
            let a = replicas(p, &five, 3);
            let b = replicas(p, &six, 3);
            primary_moved += usize::from(a[0] != b[0]);
            slots_moved += b.iter().filter(|m| !a.contains(m)).count();
        }
        let primary = primary_moved as f64 / keys as f64;
        let slots = slots_moved as f64 / (keys * 3) as f64;
        // Expected 1/6 ≈ 0.167 of each; 256 partitions leave some spread.
        assert!((0.11..0.23).contains(&primary), "primary moved {primary}");
        assert!((0.11..0.23).contains(&slots), "slots moved {slots}");
        // A balanced load: every node is the primary of some partitions.
        for m in &six {
            let owned = (0..q).filter(|p| replicas(*p, &six, 1)[0] == *m).count();
            assert!(owned > q as usize / 12, "{m} owns {owned} of {q}");
        }
    }

    #[test]
    fn keys_spread_over_every_partition() {
        let q = 16;
        let mut counts = vec![0usize; q as usize];
        for i in 0..16_000 {
            counts[partition_of(format!("k{i}").as_bytes(), q) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (700..1300).contains(c)), "{counts:?}");
    }
}
