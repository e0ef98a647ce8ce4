//! Tree math over stored complete subtrees (RFC 6962 §2.1, RFC 9162 §2.1.3.1 and §2.1.4.1).
//!
//! The catalog stores, for every complete (perfect, aligned) subtree of the log, its hash under
//! a [`NodeId`]: level `l`, index `i` covers leaves `[i·2^l, (i+1)·2^l)`. Such a node never
//! changes once its last leaf exists, so a tree of any size `n ≤ head` is fully described by
//! the stored nodes. Every computation here takes its nodes from a [`NodeSource`]; the
//! `*_nodes` planners say beforehand which nodes that will be (`O(log n)` of them), so a caller
//! fetches them in one read and computes from a map.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use super::{Hash, TlogError, empty_root, node_hash};

/// A complete subtree: level `level`, covering leaves `[index·2^level, (index+1)·2^level)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves (0 = a leaf).
    pub level: u8,
    /// Position among the nodes of that level.
    pub index: u64,
}

impl NodeId {
    /// A node id.
    pub fn new(level: u8, index: u64) -> Self {
        Self { level, index }
    }
}

/// Where a computation reads complete-subtree hashes from.
pub trait NodeSource {
    /// The hash of a complete subtree, or `None` if it is not stored.
    fn node(&self, id: NodeId) -> Option<Hash>;
}

impl NodeSource for HashMap<NodeId, Hash> {
    fn node(&self, id: NodeId) -> Option<Hash> {
        self.get(&id).copied()
    }
}

impl NodeSource for BTreeMap<NodeId, Hash> {
    fn node(&self, id: NodeId) -> Option<Hash> {
        self.get(&id).copied()
    }
}

/// Records which nodes a computation asks for, answering with zeros (the nodes read never
/// depend on the hashes' values, only on the sizes).
#[derive(Default)]
struct Recorder(RefCell<Vec<NodeId>>);

impl NodeSource for Recorder {
    fn node(&self, id: NodeId) -> Option<Hash> {
        self.0.borrow_mut().push(id);
        Some([0; 32])
    }
}

fn plan(run: impl FnOnce(&Recorder)) -> Vec<NodeId> {
    let recorder = Recorder::default();
    run(&recorder);
    let mut ids = recorder.0.into_inner();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The largest power of two strictly less than `n` (`n ≥ 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

fn get(source: &impl NodeSource, id: NodeId) -> Result<Hash, TlogError> {
    source.node(id).ok_or(TlogError::MissingNode(id))
}

/// The hash of leaves `[start, start + len)`, where `start` is a multiple of the largest power
/// of two `≤ len` (true of every range the RFC 6962 recursion visits): one read per set bit
/// of `len`.
fn range_hash(source: &impl NodeSource, start: u64, len: u64) -> Result<Hash, TlogError> {
    if len == 0 {
        return Ok(empty_root());
    }
    if len.is_power_of_two() {
        let level = len.trailing_zeros() as u8;
        return get(source, NodeId::new(level, start >> level));
    }
    let k = split_point(len);
    let left = range_hash(source, start, k)?;
    let right = range_hash(source, start + k, len - k)?;
    Ok(node_hash(&left, &right))
}

/// MTH(D[0:size]): the root of the first `size` leaves.
pub fn root(source: &impl NodeSource, size: u64) -> Result<Hash, TlogError> {
    range_hash(source, 0, size)
}

/// The nodes [`root`] reads for `size`.
pub fn root_nodes(size: u64) -> Vec<NodeId> {
    plan(|recorder| {
        let _ = root(recorder, size);
    })
}

fn path(
    source: &impl NodeSource,
    m: u64,
    start: u64,
    n: u64,
    out: &mut Vec<Hash>,
) -> Result<(), TlogError> {
    if n <= 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < k {
        path(source, m, start, k, out)?;
        out.push(range_hash(source, start + k, n - k)?);
    } else {
        path(source, m - k, start + k, n - k, out)?;
        out.push(range_hash(source, start, k)?);
    }
    Ok(())
}

/// PATH(index, D[0:size]) (RFC 9162 §2.1.3.1): the audit path of leaf `index`, leaf to root.
pub fn inclusion_proof(
    source: &impl NodeSource,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, TlogError> {
    if index >= size {
        return Err(TlogError::Range(format!(
            "leaf index {index} is not in a tree of size {size}"
        )));
    }
    let mut out = Vec::new();
    path(source, index, 0, size, &mut out)?;
    Ok(out)
}

/// The nodes [`inclusion_proof`] reads.
pub fn inclusion_nodes(index: u64, size: u64) -> Vec<NodeId> {
    plan(|recorder| {
        let _ = inclusion_proof(recorder, index, size);
    })
}

fn subproof(
    source: &impl NodeSource,
    m: u64,
    start: u64,
    n: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> Result<(), TlogError> {
    if m == n {
        if !complete {
            out.push(range_hash(source, start, n)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof(source, m, start, k, complete, out)?;
        out.push(range_hash(source, start + k, n - k)?);
    } else {
        subproof(source, m - k, start + k, n - k, false, out)?;
        out.push(range_hash(source, start, k)?);
    }
    Ok(())
}

/// PROOF(old, D[0:new]) (RFC 9162 §2.1.4.1): that the tree of size `new` extends the tree of
/// size `old`. Empty when `old` is 0 or equals `new`.
pub fn consistency_proof(
    source: &impl NodeSource,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, TlogError> {
    if old > new {
        return Err(TlogError::Range(format!(
            "from size {old} is larger than to size {new}"
        )));
    }
    let mut out = Vec::new();
    if old > 0 {
        subproof(source, old, 0, new, true, &mut out)?;
    }
    Ok(out)
}

/// The nodes [`consistency_proof`] reads.
pub fn consistency_nodes(old: u64, new: u64) -> Vec<NodeId> {
    plan(|recorder| {
        let _ = consistency_proof(recorder, old, new);
    })
}

/// The stored nodes appending leaf `index` needs: its left siblings on the way up (one per
/// trailing one bit of `index`), lowest first.
pub fn append_siblings(index: u64) -> Vec<NodeId> {
    (0..index.trailing_ones() as u8)
        .map(|level| NodeId::new(level, (index >> level) - 1))
        .collect()
}

/// The nodes that appending leaf `index` with hash `leaf` completes: the leaf itself and
/// every subtree it finishes. `siblings` are the hashes of [`append_siblings`], in order.
pub fn append_nodes(
    index: u64,
    leaf: Hash,
    siblings: &[Hash],
) -> Result<Vec<(NodeId, Hash)>, TlogError> {
    let needed = append_siblings(index);
    if needed.len() != siblings.len() {
        return Err(TlogError::Range(format!(
            "appending leaf {index} needs {} sibling(s), got {}",
            needed.len(),
            siblings.len()
        )));
    }
    let mut nodes = vec![(NodeId::new(0, index), leaf)];
    let mut hash = leaf;
    for (level, sibling) in siblings.iter().enumerate() {
        hash = node_hash(sibling, &hash);
        nodes.push((NodeId::new(level as u8 + 1, index >> (level + 1)), hash));
    }
    Ok(nodes)
}

/// A compact range over leaves `[0, size)`: the complete subtrees of `size`'s binary
/// decomposition, largest (leftmost) first. Folds a stream of leaves into the root of every
/// prefix in `O(log n)` memory.
#[derive(Clone, Debug, Default)]
pub struct Frontier {
    size: u64,
    /// `(level, hash)` of each complete subtree, left to right (levels strictly decreasing).
    stack: Vec<(u8, Hash)>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The complete subtrees a frontier of `size` leaves holds, left to right: the nodes
    /// [`Frontier::resume`] needs.
    pub fn nodes_of(size: u64) -> Vec<NodeId> {
        let mut start = 0u64;
        let mut ids = Vec::new();
        for level in (0..64u8).rev() {
            if size & (1 << level) != 0 {
                ids.push(NodeId::new(level, start >> level));
                start += 1 << level;
            }
        }
        ids
    }

    /// The frontier of a stored tree of `size` leaves (to append more without replaying it).
    pub fn resume(source: &impl NodeSource, size: u64) -> Result<Self, TlogError> {
        let stack = Self::nodes_of(size)
            .into_iter()
            .map(|id| Ok((id.level, get(source, id)?)))
            .collect::<Result<Vec<_>, TlogError>>()?;
        Ok(Self { size, stack })
    }

    /// Leaves pushed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash; returns the complete subtrees this append finished (the leaf
    /// first, then each merge), exactly the nodes the catalog stores for it.
    pub fn push(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let index = self.size;
        let mut created = vec![(NodeId::new(0, index), leaf)];
        let mut level = 0u8;
        let mut hash = leaf;
        while let Some(&(top_level, top)) = self.stack.last() {
            if top_level != level {
                break;
            }
            self.stack.pop();
            hash = node_hash(&top, &hash);
            level += 1;
            created.push((NodeId::new(level, index >> level), hash));
        }
        self.stack.push((level, hash));
        self.size += 1;
        created
    }

    /// MTH of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut root)) = iter.next() else {
            return empty_root();
        };
        for (_, left) in iter {
            root = node_hash(left, &root);
        }
        root
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::leaf_hash;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// Every node of a tree built leaf by leaf with [`append_nodes`] (siblings read from what
    /// was stored before), the way the catalog maintains it.
    fn store(leaves: &[Hash]) -> HashMap<NodeId, Hash> {
        let mut nodes = HashMap::new();
        for (index, leaf) in leaves.iter().enumerate() {
            let siblings: Vec<Hash> = append_siblings(index as u64)
                .into_iter()
                .map(|id| nodes[&id])
                .collect();
            for (id, hash) in append_nodes(index as u64, *leaf, &siblings).unwrap() {
                assert!(nodes.insert(id, hash).is_none(), "{id:?} written twice");
            }
        }
        nodes
    }

    #[test]
    fn append_and_frontier_create_the_same_nodes() {
        let leaves = leaves(100);
        let stored = store(&leaves);
        let mut frontier = Frontier::new();
        let mut from_frontier = HashMap::new();
        for leaf in &leaves {
            from_frontier.extend(frontier.push(*leaf));
        }
        assert_eq!(stored, from_frontier);
        // 2n - popcount(n) complete subtrees.
        assert_eq!(stored.len(), 200 - 3);
    }

    #[test]
    fn planners_name_exactly_the_nodes_read_and_stay_logarithmic() {
        let stored = store(&leaves(64));
        for n in 1..=64u64 {
            let only = |ids: Vec<NodeId>| -> HashMap<NodeId, Hash> {
                ids.into_iter().map(|id| (id, stored[&id])).collect()
            };
            assert!(root(&only(root_nodes(n)), n).is_ok());
            assert!(root_nodes(n).len() as u32 == n.count_ones());
            for m in 0..n {
                let ids = inclusion_nodes(m, n);
                assert!(ids.len() <= 2 * 7, "{m} {n}: {}", ids.len());
                assert!(inclusion_proof(&only(ids), m, n).is_ok());
            }
            for m in 0..=n {
                let ids = consistency_nodes(m, n);
                assert!(ids.len() <= 2 * 7 + 1, "{m} {n}: {}", ids.len());
                assert!(consistency_proof(&only(ids), m, n).is_ok());
            }
        }
    }

    #[test]
    fn a_resumed_frontier_continues_where_the_stored_tree_ends() {
        let leaves = leaves(50);
        let stored = store(&leaves[..37]);
        let mut resumed = Frontier::resume(&stored, 37).unwrap();
        let mut fresh = Frontier::new();
        for leaf in &leaves[..37] {
            fresh.push(*leaf);
        }
        assert_eq!(resumed.root(), fresh.root());
        for leaf in &leaves[37..] {
            assert_eq!(resumed.push(*leaf), fresh.push(*leaf));
        }
        assert_eq!(resumed.root(), root(&store(&leaves), 50).unwrap());
        assert!(Frontier::resume(&store(&leaves[..3]), 4).is_err());
    }

    #[test]
    fn a_missing_node_is_named() {
        let mut stored = store(&leaves(8));
        stored.remove(&NodeId::new(3, 0));
        assert_eq!(
            root(&stored, 8),
            Err(TlogError::MissingNode(NodeId::new(3, 0)))
        );
        assert!(root(&stored, 7).is_ok());
    }

    #[test]
    fn out_of_range_requests_are_refused() {
        let stored = store(&leaves(4));
        assert!(matches!(
            inclusion_proof(&stored, 4, 4),
            Err(TlogError::Range(_))
        ));
        assert!(matches!(
            consistency_proof(&stored, 5, 4),
            Err(TlogError::Range(_))
        ));
        assert!(matches!(
            append_nodes(3, [0; 32], &[]),
            Err(TlogError::Range(_))
        ));
    }
}
