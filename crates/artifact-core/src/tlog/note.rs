//! C2SP `signed-note` with Ed25519 keys, and the C2SP `tlog-checkpoint` body.
//!
//! A signed note is UTF-8 text ending in a newline, a blank line, then one line per signature:
//! `— <name> <base64(key id ‖ signature)>`. The key id is the first four bytes of
//! `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)` (0x01: Ed25519). Keys are written as in Go's
//! `golang.org/x/mod/sumdb/note`: the verifier key `<name>+<hex key id>+<base64(0x01 ‖
//! public key)>`, the signer key `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 ‖ seed)>`.
//!
//! A checkpoint body is `<origin>\n<tree size>\n<base64 root>\n` plus optional extension lines.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

use super::{Hash, TlogError, b64_decode, b64_encode, b64_hash};

/// The signature algorithm byte of Ed25519 keys in signed notes.
const ALG_ED25519: u8 = 0x01;
/// The prefix of signature lines (U+2014 EM DASH, space).
const SIG_PREFIX: &str = "\u{2014} ";
/// Notes larger than this are refused unread (Go's note package uses the same bound).
const MAX_NOTE_BYTES: usize = 1 << 20;

/// Whether `name` is a valid key name: non-empty, no whitespace, no `+`.
fn check_name(name: &str) -> Result<(), TlogError> {
    if name.is_empty() {
        return Err(TlogError::malformed("key name", "it is empty"));
    }
    if name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(TlogError::malformed(
            "key name",
            format!("`{name}` contains whitespace or `+`"),
        ));
    }
    Ok(())
}

/// The C2SP key id of an Ed25519 key under `name`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([ALG_ED25519]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// The log's signing key: a name (the checkpoint origin) and an Ed25519 key. Lives in a file
/// outside the catalog, never in it.
#[derive(Clone)]
pub struct LogSigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for LogSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id()))
            .finish_non_exhaustive()
    }
}

impl LogSigner {
    /// A signer from a 32-byte Ed25519 seed (the caller supplies the randomness).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, TlogError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 ‖ seed)>` (surrounding whitespace
    /// ignored).
    pub fn from_skey(text: &str) -> Result<Self, TlogError> {
        let what = "signer key";
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| TlogError::malformed(what, "it does not start with PRIVATE+KEY+"))?;
        let (name, id, key) = split_key(rest, what)?;
        let key = b64_decode(key, what)?;
        let seed: [u8; 32] = match key.split_first() {
            Some((&ALG_ED25519, seed)) => seed
                .try_into()
                .map_err(|_| TlogError::malformed(what, "an Ed25519 seed is 32 bytes"))?,
            _ => return Err(TlogError::malformed(what, "not an Ed25519 (0x01) key")),
        };
        let signer = Self::from_seed(name, seed)?;
        if signer.key_id() != id {
            return Err(TlogError::malformed(
                what,
                format!(
                    "key id {id:08x} does not match the key ({:08x})",
                    signer.key_id()
                ),
            ));
        }
        Ok(signer)
    }

    /// The `PRIVATE+KEY+…` text of this key (secret: write it only to a 0600 file).
    pub fn to_skey(&self) -> String {
        let mut bytes = vec![ALG_ED25519];
        bytes.extend_from_slice(&self.key.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id(),
            b64_encode(&bytes)
        )
    }

    /// The key name (the log's origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The C2SP key id.
    pub fn key_id(&self) -> u32 {
        key_id(&self.name, &self.key.verifying_key().to_bytes())
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The matching verifier.
    pub fn verifier(&self) -> LogVerifier {
        LogVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` (which must end in a newline) into a signed note with one signature.
    pub fn sign_note(&self, text: &str) -> Result<String, TlogError> {
        check_text(text)?;
        let signature = self.key.sign(text.as_bytes());
        let mut blob = self.key_id().to_be_bytes().to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            b64_encode(&blob)
        ))
    }

    /// Signs a checkpoint.
    pub fn sign_checkpoint(&self, checkpoint: &Checkpoint) -> Result<String, TlogError> {
        self.sign_note(&checkpoint.body())
    }
}

fn split_key<'a>(text: &'a str, what: &'static str) -> Result<(&'a str, u32, &'a str), TlogError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(TlogError::malformed(
            what,
            "expected NAME+KEYID+KEY".to_owned(),
        ));
    };
    check_name(name)?;
    if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(TlogError::malformed(
            what,
            format!("key id `{id}` is not 8 hex digits"),
        ));
    }
    let id = u32::from_str_radix(id, 16)
        .map_err(|e| TlogError::malformed(what, format!("key id: {e}")))?;
    Ok((name, id, key))
}

fn check_text(text: &str) -> Result<(), TlogError> {
    if !text.ends_with('\n') {
        return Err(TlogError::malformed(
            "note text",
            "it does not end in a newline",
        ));
    }
    if text.len() > MAX_NOTE_BYTES {
        return Err(TlogError::malformed("note text", "it is larger than 1 MiB"));
    }
    Ok(())
}

/// A verifier key: a name and an Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogVerifier {
    name: String,
    key: VerifyingKey,
}

impl LogVerifier {
    /// Parses `<name>+<hex key id>+<base64(0x01 ‖ public key)>` (surrounding whitespace
    /// ignored).
    pub fn from_vkey(text: &str) -> Result<Self, TlogError> {
        let what = "verifier key";
        let (name, id, key) = split_key(text.trim(), what)?;
        let key = b64_decode(key, what)?;
        let public: [u8; 32] = match key.split_first() {
            Some((&ALG_ED25519, public)) => public
                .try_into()
                .map_err(|_| TlogError::malformed(what, "an Ed25519 public key is 32 bytes"))?,
            _ => return Err(TlogError::malformed(what, "not an Ed25519 (0x01) key")),
        };
        if key_id(name, &public) != id {
            return Err(TlogError::malformed(
                what,
                format!("key id {id:08x} does not match the key"),
            ));
        }
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|e| TlogError::malformed(what, format!("not an Ed25519 point: {e}")))?;
        Ok(Self {
            name: name.to_owned(),
            key,
        })
    }

    /// The `NAME+KEYID+KEY` text.
    pub fn to_vkey(&self) -> String {
        let mut bytes = vec![ALG_ED25519];
        bytes.extend_from_slice(&self.key.to_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id(), b64_encode(&bytes))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The C2SP key id.
    pub fn key_id(&self) -> u32 {
        key_id(&self.name, &self.key.to_bytes())
    }

    /// Checks a signed note: returns its text if one signature line is by this key and
    /// verifies. Signatures by other keys are ignored; one by this key that does not verify
    /// fails the note.
    pub fn open_note<'a>(&self, note: &'a str) -> Result<&'a str, TlogError> {
        let what = "signed note";
        if note.len() > MAX_NOTE_BYTES {
            return Err(TlogError::malformed(what, "it is larger than 1 MiB"));
        }
        if !note.ends_with('\n') {
            return Err(TlogError::malformed(what, "it does not end in a newline"));
        }
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| TlogError::malformed(what, "no blank line before the signatures"))?;
        let (text, signatures) = (&note[..=split], &note[split + 2..]);
        let mut verified = false;
        for line in signatures.lines() {
            let rest = line.strip_prefix(SIG_PREFIX).ok_or_else(|| {
                TlogError::malformed(
                    what,
                    format!("signature line `{line}` does not start with `— `"),
                )
            })?;
            let (name, blob) = rest.split_once(' ').ok_or_else(|| {
                TlogError::malformed(what, format!("signature line `{line}` has no signature"))
            })?;
            check_name(name)?;
            let blob = b64_decode(blob, what)?;
            if blob.len() < 4 {
                return Err(TlogError::malformed(
                    what,
                    "a signature is shorter than its key id",
                ));
            }
            let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
            if name != self.name || id != self.key_id() {
                continue;
            }
            let signature: [u8; 64] = blob[4..].try_into().map_err(|_| {
                TlogError::BadSignature(format!(
                    "the signature by {name} is {} bytes, an Ed25519 signature is 64",
                    blob.len() - 4
                ))
            })?;
            self.key
                .verify_strict(text.as_bytes(), &Signature::from_bytes(&signature))
                .map_err(|_| {
                    TlogError::BadSignature(format!(
                        "the signature by {name} ({id:08x}) does not verify: the note was altered or signed by another key"
                    ))
                })?;
            verified = true;
        }
        if !verified {
            return Err(TlogError::BadSignature(format!(
                "the note carries no signature by {} ({:08x})",
                self.name,
                self.key_id()
            )));
        }
        Ok(text)
    }

    /// Verifies a signed checkpoint and parses its body; its origin must be this key's name.
    pub fn open_checkpoint(&self, note: &str) -> Result<Checkpoint, TlogError> {
        let checkpoint = Checkpoint::parse(self.open_note(note)?)?;
        if checkpoint.origin != self.name {
            return Err(TlogError::BadSignature(format!(
                "the checkpoint is for origin `{}`, the key is `{}`",
                checkpoint.origin, self.name
            )));
        }
        Ok(checkpoint)
    }
}

/// The body of a C2SP `tlog-checkpoint`: which log, how many leaves, and their root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin (its key name).
    pub origin: String,
    /// Leaves in the tree.
    pub tree_size: u64,
    /// MTH of those leaves.
    pub root_hash: Hash,
    /// Extension lines (kept, not interpreted).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    pub fn new(origin: &str, tree_size: u64, root_hash: Hash) -> Self {
        Self {
            origin: origin.to_owned(),
            tree_size,
            root_hash,
            extensions: Vec::new(),
        }
    }

    /// The note text: `<origin>\n<size>\n<base64 root>\n` and any extension lines.
    pub fn body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.tree_size,
            b64_encode(&self.root_hash)
        );
        for line in &self.extensions {
            body.push_str(line);
            body.push('\n');
        }
        body
    }

    /// Parses a checkpoint body strictly.
    pub fn parse(text: &str) -> Result<Self, TlogError> {
        let what = "checkpoint";
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| TlogError::malformed(what, "it does not end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(TlogError::malformed(what, "the origin line is empty"));
        }
        let size = lines
            .next()
            .ok_or_else(|| TlogError::malformed(what, "no tree size line"))?;
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(TlogError::malformed(
                what,
                format!("tree size `{size}` is not a decimal number"),
            ));
        }
        let tree_size = size
            .parse()
            .map_err(|e| TlogError::malformed(what, format!("tree size `{size}`: {e}")))?;
        let root = lines
            .next()
            .ok_or_else(|| TlogError::malformed(what, "no root hash line"))?;
        let root_hash = b64_hash(root, "checkpoint root hash")?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(TlogError::malformed(what, "an extension line is empty"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            tree_size,
            root_hash,
            extensions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // golang.org/x/mod/sumdb/note's test key and note (also in C2SP signed-note).
    const SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn go_note_test_vector() {
        let signer = LogSigner::from_skey(SKEY).unwrap();
        assert_eq!(signer.key_id(), 0xc74f20a3);
        assert_eq!(signer.to_skey(), SKEY);
        assert_eq!(signer.verifier().to_vkey(), VKEY);
        assert_eq!(signer.sign_note(TEXT).unwrap(), NOTE);
        let verifier = LogVerifier::from_vkey(VKEY).unwrap();
        assert_eq!(verifier.open_note(NOTE).unwrap(), TEXT);
    }

    #[test]
    fn altered_notes_and_wrong_keys_fail() {
        let verifier = LogVerifier::from_vkey(VKEY).unwrap();
        let altered = NOTE.replace("cryptography", "cryptographY");
        assert!(matches!(
            verifier.open_note(&altered),
            Err(TlogError::BadSignature(_))
        ));
        let other = LogSigner::from_seed("PeterNeumann", [7; 32]).unwrap();
        assert!(matches!(
            other.verifier().open_note(NOTE),
            Err(TlogError::BadSignature(_))
        ));
        assert!(matches!(
            verifier.open_note(TEXT),
            Err(TlogError::Malformed { .. })
        ));
        // A key id that does not match the key.
        assert!(LogVerifier::from_vkey(&VKEY.replace("c74f20a3", "c74f20a4")).is_err());
        assert!(LogSigner::from_skey(&SKEY.replace("c74f20a3", "00000000")).is_err());
        assert!(LogSigner::from_seed("bad name", [0; 32]).is_err());
        assert!(LogSigner::from_seed("bad+name", [0; 32]).is_err());
        assert!(LogVerifier::from_vkey("PeterNeumann+c74f20a3").is_err());
    }

    #[test]
    fn other_signatures_are_ignored() {
        let other = LogSigner::from_seed("EnochRoot", [9; 32]).unwrap();
        let cosigned = format!(
            "{NOTE}{}",
            other
                .sign_note(TEXT)
                .unwrap()
                .rsplit_once("\n\n")
                .unwrap()
                .1
        );
        let verifier = LogVerifier::from_vkey(VKEY).unwrap();
        assert_eq!(verifier.open_note(&cosigned).unwrap(), TEXT);
        assert_eq!(other.verifier().open_note(&cosigned).unwrap(), TEXT);
    }

    #[test]
    fn checkpoints_round_trip_and_parse_strictly() {
        let signer = LogSigner::from_seed("example.com/log", [1; 32]).unwrap();
        let checkpoint = Checkpoint::new("example.com/log", 42, [5; 32]);
        let note = signer.sign_checkpoint(&checkpoint).unwrap();
        assert!(note.starts_with(
            "example.com/log\n42\nBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=\n\n\u{2014} example.com/log "
        ));
        assert_eq!(
            signer.verifier().open_checkpoint(&note).unwrap(),
            checkpoint
        );
        for bad in [
            "example.com/log\n042\nBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=\n",
            "example.com/log\n-1\nBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=\n",
            "example.com/log\n42\nBQUF\n",
            "example.com/log\n42\n",
            "\n42\nBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=\n",
            "example.com/log\n42\nBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
        let with_ext = "o\n1\nBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=\next one\n";
        assert_eq!(
            Checkpoint::parse(with_ext).unwrap().extensions,
            vec!["ext one"]
        );
        // Signed under another origin than the key's name.
        let foreign = signer
            .sign_checkpoint(&Checkpoint::new("other/log", 1, [0; 32]))
            .unwrap();
        assert!(matches!(
            signer.verifier().open_checkpoint(&foreign),
            Err(TlogError::BadSignature(_))
        ));
    }
}
