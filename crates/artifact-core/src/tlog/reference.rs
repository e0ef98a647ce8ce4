//! An independent reference: RFC 6962 §2.1 written as the RFC states it (recursion over the
//! leaf data, hashing with `sha2` directly, sharing no code with the implementation), checked
//! against the implementation for every position of trees of sizes 1..=64, and against the
//! published Certificate Transparency test vectors.

use sha2::{Digest as _, Sha256};

use super::tree::{self, NodeId};
use super::{Hash, TlogError, leaf_hash, verify_consistency, verify_inclusion};
use std::collections::HashMap;

fn sha(parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn k_of(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]) of RFC 6962 §2.1.
fn mth(d: &[Vec<u8>]) -> Hash {
    match d.len() {
        0 => sha(&[]),
        1 => sha(&[&[0], &d[0]]),
        n => {
            let k = k_of(n);
            sha(&[&[1], &mth(&d[..k]), &mth(&d[k..])])
        }
    }
}

/// PATH(m, D[n]) of RFC 6962 §2.1.1.
fn path(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
    let n = d.len();
    if n <= 1 {
        return vec![];
    }
    let k = k_of(n);
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

/// SUBPROOF(m, D[n], b) of RFC 6962 §2.1.2.
fn subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![mth(d)] };
    }
    let k = k_of(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

fn data(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("event {i}").into_bytes()).collect()
}

fn stored(d: &[Vec<u8>]) -> HashMap<NodeId, Hash> {
    let mut frontier = tree::Frontier::new();
    let mut nodes = HashMap::new();
    for leaf in d {
        nodes.extend(frontier.push(leaf_hash(leaf)));
    }
    nodes
}

#[test]
fn roots_match_the_reference_for_every_prefix() {
    let d = data(64);
    let nodes = stored(&d);
    let mut frontier = tree::Frontier::new();
    for n in 0..=64usize {
        let want = mth(&d[..n]);
        assert_eq!(tree::root(&nodes, n as u64).unwrap(), want, "size {n}");
        assert_eq!(frontier.root(), want, "frontier size {n}");
        if n < 64 {
            frontier.push(leaf_hash(&d[n]));
        }
    }
}

#[test]
fn ct_test_vectors() {
    // The eight leaves and roots of the Certificate Transparency Merkle test vectors.
    let leaves: Vec<Vec<u8>> = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|h| hex::decode(h).unwrap())
    .collect();
    let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let nodes = stored(&leaves);
    for (i, want) in roots.iter().enumerate() {
        assert_eq!(
            hex::encode(tree::root(&nodes, i as u64 + 1).unwrap()),
            *want,
            "size {}",
            i + 1
        );
    }
    assert_eq!(
        hex::encode(tree::root(&nodes, 0).unwrap()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

fn flip(h: &Hash) -> Hash {
    let mut h = *h;
    h[0] ^= 1;
    h
}

#[test]
fn inclusion_proofs_for_every_position_verify_and_fail_when_altered() {
    let d = data(64);
    let wide = data(128);
    let nodes = stored(&d);
    for n in 1..=64usize {
        let root = mth(&d[..n]);
        for m in 0..n {
            let proof = tree::inclusion_proof(&nodes, m as u64, n as u64).unwrap();
            assert_eq!(proof, path(m, &d[..n]), "PATH({m}, D[{n}])");
            let leaf = leaf_hash(&d[m]);
            verify_inclusion(m as u64, n as u64, &leaf, &proof, &root).unwrap();
            // A wrong leaf, a wrong index, a wrong size, a truncated or extended proof, an
            // altered hash, a wrong root: each fails.
            let other = leaf_hash(b"not this event");
            assert!(verify_inclusion(m as u64, n as u64, &other, &proof, &root).is_err());
            if n > 1 {
                let wrong_index = (m as u64 + 1) % n as u64;
                assert!(
                    verify_inclusion(wrong_index, n as u64, &leaf, &proof, &root).is_err(),
                    "index {wrong_index} instead of {m} in {n}"
                );
                let last = proof.len() - 1;
                assert!(
                    verify_inclusion(m as u64, n as u64, &leaf, &proof[..last], &root).is_err()
                );
                let mut altered = proof.clone();
                altered[last / 2] = flip(&altered[last / 2]);
                assert!(verify_inclusion(m as u64, n as u64, &leaf, &altered, &root).is_err());
            }
            let mut extended = proof.clone();
            extended.push(root);
            assert!(verify_inclusion(m as u64, n as u64, &leaf, &extended, &root).is_err());
            // A wrong size fails whenever it needs a path of another length. (A size with a
            // path of the same shape can lead to the same root: binding the root to its size
            // is the signed checkpoint's job.)
            for size in [n + 1, n * 2] {
                if path(m, &wide[..size]).len() != proof.len() {
                    assert!(verify_inclusion(m as u64, size as u64, &leaf, &proof, &root).is_err());
                }
            }
            assert!(verify_inclusion(m as u64, n as u64, &leaf, &proof, &flip(&root)).is_err());
            assert!(verify_inclusion(n as u64, n as u64, &leaf, &proof, &root).is_err());
        }
    }
}

#[test]
fn consistency_proofs_for_every_pair_verify_and_fail_when_altered() {
    let d = data(64);
    let wide = data(65);
    let nodes = stored(&d);
    for n in 1..=64usize {
        let new_root = mth(&d[..n]);
        for m in 0..=n {
            let old_root = mth(&d[..m]);
            let proof = tree::consistency_proof(&nodes, m as u64, n as u64).unwrap();
            let want = if m == 0 {
                vec![]
            } else {
                subproof(m, &d[..n], true)
            };
            assert_eq!(proof, want, "PROOF({m}, D[{n}])");
            verify_consistency(m as u64, n as u64, &old_root, &new_root, &proof).unwrap();
            assert!(
                verify_consistency(m as u64, n as u64, &flip(&old_root), &new_root, &proof)
                    .is_err()
            );
            // (Every tree extends the empty one, whatever its root.)
            if m > 0 {
                assert!(
                    verify_consistency(m as u64, n as u64, &old_root, &flip(&new_root), &proof)
                        .is_err()
                );
            }
            if !proof.is_empty() {
                let last = proof.len() - 1;
                assert!(
                    verify_consistency(m as u64, n as u64, &old_root, &new_root, &proof[..last])
                        .is_err(),
                    "truncated {m} {n}"
                );
                let mut altered = proof.clone();
                altered[0] = flip(&altered[0]);
                assert!(
                    verify_consistency(m as u64, n as u64, &old_root, &new_root, &altered).is_err()
                );
                // Claimed against the wrong sizes.
                if m + 1 < n {
                    assert!(
                        verify_consistency(m as u64 + 1, n as u64, &old_root, &new_root, &proof)
                            .is_err()
                    );
                }
                if subproof(m, &wide[..n + 1], true).len() != proof.len() {
                    assert!(
                        verify_consistency(m as u64, n as u64 + 1, &old_root, &new_root, &proof)
                            .is_err()
                    );
                }
            }
            let mut extended = proof.clone();
            extended.push(new_root);
            assert!(
                verify_consistency(m as u64, n as u64, &old_root, &new_root, &extended).is_err()
            );
        }
        // A log that changed an early leaf is not consistent with its past.
        if n >= 2 {
            let mut forked = d[..n].to_vec();
            forked[0] = b"rewritten".to_vec();
            let forked_nodes = stored(&forked);
            for m in 1..n {
                let proof = tree::consistency_proof(&forked_nodes, m as u64, n as u64).unwrap();
                assert!(
                    verify_consistency(m as u64, n as u64, &mth(&d[..m]), &mth(&forked), &proof)
                        .is_err()
                );
            }
        }
    }
}

#[test]
fn receipts_verify_offline_and_fail_when_altered() {
    use super::{Checkpoint, LogSigner, Receipt};
    use crate::cbor::Value;
    use crate::event::Event;
    use crate::time::Timestamp;
    let mut bodies = Vec::new();
    for seq in 1..=5u64 {
        let event = Event {
            seq,
            event_type: "v1.test".into(),
            package_id: None,
            actor: "t".into(),
            at: Timestamp::from_unix_millis(seq as i64).unwrap(),
            data: Value::Null,
            prev: None,
        };
        bodies.push(event.canonical_bytes().unwrap());
    }
    let nodes = stored(&bodies);
    let signer = LogSigner::from_seed("test/log", [3; 32]).unwrap();
    let root = tree::root(&nodes, 5).unwrap();
    let note = signer
        .sign_checkpoint(&Checkpoint::new("test/log", 5, root))
        .unwrap();
    let proof = tree::inclusion_proof(&nodes, 2, 5).unwrap();
    let receipt = Receipt::new(3, 5, &bodies[2], &proof, note.clone());
    let parsed = Receipt::from_json(&receipt.to_json()).unwrap();
    assert_eq!(parsed.verify(&signer.verifier()).unwrap().seq, 3);

    let mut wrong_seq = receipt.clone();
    wrong_seq.seq = 4;
    wrong_seq.leaf_index = 3;
    assert!(wrong_seq.verify(&signer.verifier()).is_err());
    let mut wrong_leaf = receipt.clone();
    wrong_leaf.leaf = super::b64_encode(&bodies[3]);
    assert!(wrong_leaf.verify(&signer.verifier()).is_err());
    let mut wrong_size = receipt.clone();
    wrong_size.tree_size = 4;
    assert!(wrong_size.verify(&signer.verifier()).is_err());
    let mut truncated = receipt.clone();
    truncated.proof.pop();
    assert!(matches!(
        truncated.verify(&signer.verifier()),
        Err(TlogError::BadProof(_))
    ));
    let other = LogSigner::from_seed("test/log", [4; 32]).unwrap();
    assert!(matches!(
        receipt.verify(&other.verifier()),
        Err(TlogError::BadSignature(_))
    ));
    assert!(Receipt::from_json("{\"seq\": 1}").is_err());
}
