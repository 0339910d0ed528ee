//! Invertible Bloom lookup table over the keyspace's (key hash, entry hash)
//! pairs, maintained next to the Merkle tree and folded to the size a sync
//! session needs. Two replicas' tables subtract to a table of their
//! symmetric difference, which peels into exactly the differing entries,
//! in space proportional to the difference, not to the keyspace.
//!
//! Three sub-tables of [`MAX_CELLS`] = 15·2^11 cells each; an element goes
//! to one cell per sub-table, chosen by a hash modulo `MAX_CELLS`, so a
//! table folds to any size dividing `MAX_CELLS` (2^a, 3·2^a, 5·2^a, 15·2^a:
//! steps of at most 1.34×) by adding cell `j + t·size` into cell `j`. Counts travel modulo 256
//! (a difference table's counts are small), so a cell is 17 bytes on the
//! wire. Pure arithmetic, no I/O.

use bincode::{Decode, Encode};
use std::collections::VecDeque;

/// Cells per sub-table of the maintained table.
pub const MAX_CELLS: usize = 15 << 11;
/// Smallest cells per sub-table a fold produces.
pub const MIN_CELLS: usize = 16;
/// Sub-tables (hash functions).
pub const TABLES: usize = 3;

/// One cell: how many elements, and the XOR of their fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Cell {
    /// Elements added minus removed.
    pub count: i32,
    /// XOR of key hashes.
    pub kh: u64,
    /// XOR of (32-bit truncated) entry hashes.
    pub eh: u32,
    /// XOR of element check hashes.
    pub chk: u32,
}

/// An element recovered by peeling: present on the positive side (`+1`) or
/// the negative side (`-1`) of a difference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entry {
    /// Key hash.
    pub kh: u64,
    /// Low 32 bits of the entry hash.
    pub eh: u32,
}

/// One cell's share of an element's update (see [`Iblt::updates_for`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellUpdate {
    cell: u32,
    sign: i32,
    kh: u64,
    eh: u32,
    chk: u32,
}

/// An IBLT of `TABLES` sub-tables of `size` cells each.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Iblt {
    size: u32,
    cells: Vec<Cell>,
}

fn element_hash(e: Entry, seed: u64) -> u64 {
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&e.kh.to_le_bytes());
    b[8..].copy_from_slice(&e.eh.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64_with_seed(&b, seed)
}

/// Whether `size` is a table size this build folds to.
pub fn valid_size(size: usize) -> bool {
    (MIN_CELLS..=MAX_CELLS).contains(&size) && MAX_CELLS % size == 0
}

/// The cell of element `e` in sub-table `t` of a table of `size` cells
/// per sub-table.
fn index_in(size: usize, e: Entry, t: usize) -> usize {
    let h = (element_hash(e, t as u64 + 1) % MAX_CELLS as u64) as usize;
    t * size + h % size
}

fn check(e: Entry) -> u32 {
    (element_hash(e, 0x5eed) >> 32) as u32
}

impl Iblt {
    /// An empty table with `size` cells per sub-table (see [`valid_size`]).
    pub fn new(size: usize) -> Iblt {
        Iblt {
            size: size as u32,
            cells: vec![Cell::default(); TABLES * size],
        }
    }

    /// Cells per sub-table.
    pub fn size(&self) -> usize {
        self.size as usize
    }

    /// Whether the shape is one this build produces (checked on decode).
    pub fn is_well_formed(&self) -> bool {
        let s = self.size as usize;
        valid_size(s) && self.cells.len() == TABLES * s
    }

    fn index(&self, e: Entry, t: usize) -> usize {
        index_in(self.size as usize, e, t)
    }

    /// Add (`sign` = 1) or remove (`sign` = -1) an element.
    pub fn update(&mut self, e: Entry, sign: i32) {
        let c = check(e);
        for t in 0..TABLES {
            let i = self.index(e, t);
            let cell = &mut self.cells[i];
            cell.count = cell.count.wrapping_add(sign);
            cell.kh ^= e.kh;
            cell.eh ^= e.eh;
            cell.chk ^= c;
        }
    }

    /// The cell updates, in a table of `size` cells per sub-table, of
    /// adding (`sign` = 1) or removing (`sign` = -1) each element, for
    /// [`Iblt::apply_updates`]: the hashing, without touching a table (so
    /// it can run outside the table's lock).
    pub fn updates_for(
        size: usize,
        elements: impl Iterator<Item = (Entry, i32)>,
    ) -> Vec<CellUpdate> {
        let mut out = Vec::with_capacity(elements.size_hint().0 * TABLES);
        for (e, sign) in elements {
            let chk = check(e);
            for t in 0..TABLES {
                out.push(CellUpdate {
                    cell: index_in(size, e, t) as u32,
                    sign,
                    kh: e.kh,
                    eh: e.eh,
                    chk,
                });
            }
        }
        out
    }

    /// Apply cell updates from [`Iblt::updates_for`] (for this table's
    /// size), in cell order: a chunk of updates then walks the table
    /// once instead of jumping to a random cell three times per element.
    /// The result equals [`Iblt::update`] of each element (XOR and
    /// addition commute).
    pub fn apply_updates(&mut self, mut updates: Vec<CellUpdate>) {
        updates.sort_unstable_by_key(|u| u.cell);
        for u in updates {
            let cell = &mut self.cells[u.cell as usize];
            cell.count = cell.count.wrapping_add(u.sign);
            cell.kh ^= u.kh;
            cell.eh ^= u.eh;
            cell.chk ^= u.chk;
        }
    }

    /// This table folded to `size` cells per sub-table (a valid size that
    /// divides this table's size; otherwise the table is returned as is).
    pub fn fold(&self, size: usize) -> Iblt {
        if !valid_size(size) || self.size as usize % size != 0 {
            return self.clone();
        }
        let mut out = Iblt::new(size);
        let from = self.size as usize;
        for t in 0..TABLES {
            for j in 0..from {
                let src = self.cells[t * from + j];
                let dst = &mut out.cells[t * size + j % size];
                dst.count = dst.count.wrapping_add(src.count);
                dst.kh ^= src.kh;
                dst.eh ^= src.eh;
                dst.chk ^= src.chk;
            }
        }
        out
    }

    /// `self - other`, cell by cell (same size). Counts are taken modulo
    /// 256 (as they travel), which is exact for a difference of fewer than
    /// 128 elements per cell.
    pub fn subtract(&mut self, other: &Iblt) {
        for (a, b) in self.cells.iter_mut().zip(&other.cells) {
            a.count = a.count.wrapping_sub(b.count) as i8 as i32;
            a.kh ^= b.kh;
            a.eh ^= b.eh;
            a.chk ^= b.chk;
        }
    }

    fn is_pure(&self, i: usize) -> bool {
        let c = self.cells[i];
        (c.count == 1 || c.count == -1) && check(Entry { kh: c.kh, eh: c.eh }) == c.chk
    }

    /// Peel a difference table into its elements: those only on the
    /// positive side and those only on the negative side. `None` if the
    /// table is too small for the difference (it does not fully peel).
    pub fn peel(mut self) -> Option<(Vec<Entry>, Vec<Entry>)> {
        let mut plus = Vec::new();
        let mut minus = Vec::new();
        let mut queue: VecDeque<usize> =
            (0..self.cells.len()).filter(|i| self.is_pure(*i)).collect();
        while let Some(i) = queue.pop_front() {
            if !self.is_pure(i) {
                continue;
            }
            let c = self.cells[i];
            let e = Entry { kh: c.kh, eh: c.eh };
            if c.count == 1 {
                plus.push(e);
            } else {
                minus.push(e);
            }
            self.update(e, -c.count);
            for t in 0..TABLES {
                let j = self.index(e, t);
                if self.is_pure(j) {
                    queue.push_back(j);
                }
            }
            if plus.len() + minus.len() > self.cells.len() {
                return None;
            }
        }
        if self.cells.iter().all(|c| *c == Cell::default()) {
            plus.sort_unstable();
            minus.sort_unstable();
            Some((plus, minus))
        } else {
            None
        }
    }
}

/// Cells per sub-table for a difference of about `keys` differing keys
/// (two elements each, 1.5 cells per element); `None` if even the largest
/// table is likely too small.
pub fn cells_for(keys: f64) -> Option<usize> {
    let elements = 2.0 * keys.max(1.0);
    let per_table = (elements * 1.5 / TABLES as f64).ceil() as usize + 4;
    (MIN_CELLS..=MAX_CELLS).find(|s| *s >= per_table && valid_size(*s))
}

/// Bytes per cell on the wire.
pub const WIRE_CELL_LEN: usize = 17;

impl Iblt {
    /// Wire form: size (u32 LE), then per cell count mod 256 (1 byte), key
    /// hash XOR (8, LE), entry hash XOR (4, LE), check XOR (4, LE).
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.cells.len() * WIRE_CELL_LEN);
        out.extend_from_slice(&self.size.to_le_bytes());
        for c in &self.cells {
            out.push(c.count as u8);
            out.extend_from_slice(&c.kh.to_le_bytes());
            out.extend_from_slice(&c.eh.to_le_bytes());
            out.extend_from_slice(&c.chk.to_le_bytes());
        }
        out
    }

    /// Parse the wire form; `None` if the size is not valid or the length
    /// does not match it. Counts come back sign-extended from 8 bits.
    pub fn from_wire(b: &[u8]) -> Option<Iblt> {
        let (size, rest) = b.split_first_chunk::<4>()?;
        let size = u32::from_le_bytes(*size) as usize;
        if !valid_size(size) || rest.len() != size * TABLES * WIRE_CELL_LEN {
            return None;
        }
        let cells = rest
            .chunks_exact(WIRE_CELL_LEN)
            .map(|c| Cell {
                count: c[0] as i8 as i32,
                kh: u64::from_le_bytes(c[1..9].try_into().unwrap_or_default()),
                eh: u32::from_le_bytes(c[9..13].try_into().unwrap_or_default()),
                chk: u32::from_le_bytes(c[13..17].try_into().unwrap_or_default()),
            })
            .collect();
        Some(Iblt {
            size: size as u32,
            cells,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_updates_equal_one_by_one() {
        for size in [MIN_CELLS, 15 << 4, MAX_CELLS] {
            let mut one = Iblt::new(size);
            let elements: Vec<(Entry, i32)> = (0..2_000u64)
                .map(|i| {
                    let e = Entry {
                        kh: i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                        eh: (i * 7) as u32,
                    };
                    (e, if i % 3 == 0 { -1 } else { 1 })
                })
                .collect();
            for (e, sign) in &elements {
                one.update(*e, *sign);
            }
            let mut batched = Iblt::new(size);
            batched.apply_updates(Iblt::updates_for(size, elements.iter().copied()));
            assert_eq!(one, batched, "size {size}");
            assert_ne!(batched, Iblt::new(size));
        }
    }

    fn e(i: u64, v: u64) -> Entry {
        Entry {
            kh: i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            eh: (v.wrapping_mul(0xc2b2_ae3d_27d4_eb4f) >> 32) as u32 | 1,
        }
    }

    #[test]
    fn difference_peels_exactly() {
        let mut a = Iblt::new(MAX_CELLS);
        let mut b = Iblt::new(MAX_CELLS);
        for i in 0..20_000 {
            a.update(e(i, i), 1);
            if i % 100 != 0 {
                b.update(e(i, i), 1);
            } else {
                b.update(e(i, i + 1), 1); // changed value
            }
        }
        b.update(e(999_999, 1), 1); // only in b
        let size = cells_for(201.0).unwrap();
        assert!(valid_size(size) && size < 400, "{size}");
        // One side travels over the wire (counts mod 256).
        let mut d = Iblt::from_wire(&a.fold(size).to_wire()).unwrap();
        d.subtract(&b.fold(size));
        let (plus, minus) = d.peel().expect("peels");
        assert_eq!(plus.len(), 200);
        assert_eq!(minus.len(), 201);
        assert!(plus.contains(&e(100, 100)));
        assert!(minus.contains(&e(100, 101)));
        assert!(minus.contains(&e(999_999, 1)));
    }

    #[test]
    fn too_small_does_not_peel() {
        let mut a = Iblt::new(MAX_CELLS);
        for i in 0..1000 {
            a.update(e(i, i), 1);
        }
        assert!(a.fold(MIN_CELLS).peel().is_none());
        let empty = Iblt::new(64);
        assert_eq!(empty.peel(), Some((vec![], vec![])));
        assert!(Iblt::from_wire(&[0, 0, 0, 0]).is_none());
        let t = Iblt::new(48).to_wire();
        assert!(Iblt::from_wire(&t[..t.len() - 1]).is_none());
        assert_eq!(cells_for(1000.0), Some(1024));
        assert_eq!(cells_for(1100.0), Some(1280));
        assert_eq!(cells_for(1e6), None);
        assert_eq!(cells_for(1.0), Some(16));
    }

    #[test]
    fn remove_undoes_add() {
        let mut a = Iblt::new(64);
        a.update(e(1, 2), 1);
        a.update(e(1, 2), -1);
        assert_eq!(a, Iblt::new(64));
    }
}
