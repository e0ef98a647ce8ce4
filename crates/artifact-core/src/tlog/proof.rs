//! Proof verification: RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency), step by step.

use super::{Hash, TlogError, node_hash};

fn bad(reason: impl Into<String>) -> TlogError {
    TlogError::BadProof(reason.into())
}

/// The root an inclusion proof leads to, or why it cannot lead anywhere.
fn inclusion_root(
    leaf_index: u64,
    tree_size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, TlogError> {
    if leaf_index >= tree_size {
        return Err(bad(format!(
            "leaf index {leaf_index} is not in a tree of size {tree_size}"
        )));
    }
    let (mut fn_, mut sn) = (leaf_index, tree_size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(bad(format!(
                "the proof has {} hashes, more than a tree of size {tree_size} needs",
                proof.len()
            )));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(bad(format!(
            "the proof has {} hashes, fewer than a tree of size {tree_size} needs",
            proof.len()
        )));
    }
    Ok(r)
}

/// Checks that `leaf` (a leaf hash) is leaf `leaf_index` of the tree of size `tree_size`
/// whose root is `root`.
pub fn verify_inclusion(
    leaf_index: u64,
    tree_size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), TlogError> {
    let computed = inclusion_root(leaf_index, tree_size, leaf, proof)?;
    if &computed != root {
        return Err(bad(format!(
            "leaf {leaf_index} and its path lead to a root other than the tree of size {tree_size}'s"
        )));
    }
    Ok(())
}

/// Checks that the tree of size `second` with root `second_root` extends the tree of size
/// `first` with root `first_root`.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), TlogError> {
    if first > second {
        return Err(bad(format!(
            "from size {first} is larger than to size {second}"
        )));
    }
    if first == second {
        if !proof.is_empty() {
            return Err(bad("a proof between equal sizes must be empty"));
        }
        if first_root != second_root {
            return Err(bad(format!(
                "two different roots for the same size {first}"
            )));
        }
        return Ok(());
    }
    if first == 0 {
        // Every tree extends the empty one.
        if !proof.is_empty() {
            return Err(bad("a proof from the empty tree must be empty"));
        }
        if first_root != &super::empty_root() {
            return Err(bad("the root of size 0 is not the empty tree's root"));
        }
        return Ok(());
    }
    if proof.is_empty() {
        return Err(bad("the proof is empty"));
    }
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(first_root);
    }
    path.extend(proof.iter());
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*path[0], *path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return Err(bad(format!(
                "the proof has {} hashes, more than sizes {first} and {second} need",
                proof.len()
            )));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(bad(format!(
            "the proof has {} hashes, fewer than sizes {first} and {second} need",
            proof.len()
        )));
    }
    if &fr != first_root {
        return Err(bad(format!(
            "the proof does not lead to the root of size {first}"
        )));
    }
    if &sr != second_root {
        return Err(bad(format!(
            "the proof does not lead to the root of size {second}"
        )));
    }
    Ok(())
}
