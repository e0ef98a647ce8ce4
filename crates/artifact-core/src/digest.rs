//! Dual digests (SPEC §2.1): BLAKE3 is the primary key, SHA-256 the interop digest.
//!
//! Both are computed in one streaming pass by [`DualHasher`]. Text forms are
//! `blake3:<64 lowercase hex>` and `sha256:<64 lowercase hex>`; [`AnyDigest`]
//! parses either, so every API can accept both.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

/// Why a digest's text form was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestParseError {
    /// The text has no `algorithm:` prefix.
    #[error("digest `{0}` has no `blake3:` or `sha256:` prefix")]
    MissingPrefix(String),
    /// The algorithm is neither `blake3` nor `sha256`.
    #[error("unknown digest algorithm `{0}` (expected `blake3` or `sha256`)")]
    UnknownAlgorithm(String),
    /// A different algorithm than the one required here.
    #[error("expected a `{expected}:` digest, got `{actual}:`")]
    WrongAlgorithm {
        /// The algorithm required.
        expected: &'static str,
        /// The algorithm given.
        actual: String,
    },
    /// The hex part is not 64 characters long.
    #[error("digest hex must be 64 characters, got {0}")]
    BadLength(usize),
    /// A character that is not lowercase hex.
    #[error("digest hex has a character that is not lowercase hex at position {0}")]
    BadHex(usize),
}

fn parse_hex32(hex_text: &str) -> Result<[u8; 32], DigestParseError> {
    if hex_text.len() != 64 {
        return Err(DigestParseError::BadLength(hex_text.chars().count()));
    }
    if let Some(position) = hex_text
        .bytes()
        .position(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(DigestParseError::BadHex(position));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).map_err(|_| DigestParseError::BadHex(0))?;
    Ok(out)
}

fn split_prefix(text: &str) -> Result<(&str, &str), DigestParseError> {
    text.split_once(':')
        .ok_or_else(|| DigestParseError::MissingPrefix(text.chars().take(80).collect()))
}

macro_rules! digest_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 32]);

        impl $name {
            /// The text prefix, without the colon.
            pub const ALGORITHM: &'static str = $prefix;

            /// Wraps raw digest bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The raw digest bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The 64 lowercase hex characters, without prefix.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// A short form for humans: prefix and the first 12 hex characters.
            pub fn fmt_short(&self) -> String {
                format!("{}:{}", $prefix, &self.to_hex()[..12])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}:{}", $prefix, self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = DigestParseError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                let (algorithm, hex_text) = split_prefix(text)?;
                if algorithm != $prefix {
                    if algorithm == "blake3" || algorithm == "sha256" {
                        return Err(DigestParseError::WrongAlgorithm {
                            expected: $prefix,
                            actual: algorithm.to_owned(),
                        });
                    }
                    return Err(DigestParseError::UnknownAlgorithm(
                        algorithm.chars().take(40).collect(),
                    ));
                }
                parse_hex32(hex_text).map(Self)
            }
        }
    };
}

digest_type!(
    /// A BLAKE3 digest: the primary key of blobs, and the form of package ids and event hashes.
    Blake3,
    "blake3"
);
digest_type!(
    /// A SHA-256 digest, kept beside BLAKE3 for interoperability (OCI, S3, `sha256sum`).
    Sha256,
    "sha256"
);

impl Blake3 {
    /// The BLAKE3 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

impl Sha256 {
    /// The SHA-256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(sha2::Sha256::digest(bytes).into())
    }
}

/// A package id: the BLAKE3 digest of the manifest's canonical CBOR.
pub type PackageId = Blake3;

/// Either digest form, as accepted by every API that looks a blob up.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AnyDigest {
    /// A `blake3:` digest.
    Blake3(Blake3),
    /// A `sha256:` digest.
    Sha256(Sha256),
}

impl fmt::Display for AnyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyDigest::Blake3(d) => d.fmt(f),
            AnyDigest::Sha256(d) => d.fmt(f),
        }
    }
}

/// What an [`AnyDigest`] parses from, as an ECMA-262 regular expression: the algorithm and 64
/// lowercase hex digits.
pub const DIGEST_PATTERN: &str = "^(blake3|sha256):[0-9a-f]{64}$";
/// What a [`Blake3`] digest (a package id) parses from.
pub const BLAKE3_PATTERN: &str = "^blake3:[0-9a-f]{64}$";

impl FromStr for AnyDigest {
    type Err = DigestParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (algorithm, _) = split_prefix(text)?;
        match algorithm {
            "blake3" => text.parse().map(AnyDigest::Blake3),
            "sha256" => text.parse().map(AnyDigest::Sha256),
            other => Err(DigestParseError::UnknownAlgorithm(
                other.chars().take(40).collect(),
            )),
        }
    }
}

impl From<Blake3> for AnyDigest {
    fn from(d: Blake3) -> Self {
        AnyDigest::Blake3(d)
    }
}

impl From<Sha256> for AnyDigest {
    fn from(d: Sha256) -> Self {
        AnyDigest::Sha256(d)
    }
}

/// The identity of a stored blob: both digests and the size in bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BlobInfo {
    /// BLAKE3 of the content (primary key, storage key).
    pub blake3: Blake3,
    /// SHA-256 of the content.
    pub sha256: Sha256,
    /// Length of the content in bytes.
    pub size: u64,
}

impl BlobInfo {
    /// Digests and size of an in-memory buffer.
    pub fn of(bytes: &[u8]) -> Self {
        let mut hasher = DualHasher::new();
        hasher.update(bytes);
        hasher.finalize()
    }

    /// Whether `digest` (either form) names this blob.
    pub fn matches(&self, digest: &AnyDigest) -> bool {
        match digest {
            AnyDigest::Blake3(d) => *d == self.blake3,
            AnyDigest::Sha256(d) => *d == self.sha256,
        }
    }
}

/// Chunks at least this large are worth a second thread in [`DualHasher::update_parallel`].
pub const PARALLEL_MIN: usize = 256 << 10;

/// Computes BLAKE3, SHA-256 and the length of a stream in one pass.
#[derive(Clone, Default)]
pub struct DualHasher {
    blake3: blake3::Hasher,
    sha256: sha2::Sha256,
    size: u64,
}

impl fmt::Debug for DualHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DualHasher")
            .field("size", &self.size)
            .finish()
    }
}

impl DualHasher {
    /// A hasher that has seen no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the stream.
    pub fn update(&mut self, bytes: &[u8]) {
        self.blake3.update(bytes);
        self.sha256.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// Like [`DualHasher::update`], with SHA-256 on a second (scoped) thread while this one
    /// computes BLAKE3, for large chunks (at least [`PARALLEL_MIN`] bytes; smaller ones are
    /// hashed inline, where a thread would cost more than it saves). Each digest on its own
    /// core: about 1.4 GB/s instead of 0.95 on these machines (MACHINE-CEILINGS.md).
    pub fn update_parallel(&mut self, bytes: &[u8]) {
        if bytes.len() < PARALLEL_MIN {
            self.update(bytes);
            return;
        }
        let sha256 = &mut self.sha256;
        std::thread::scope(|scope| {
            scope.spawn(|| sha256.update(bytes));
            self.blake3.update(bytes);
        });
        self.size += bytes.len() as u64;
    }

    /// Bytes fed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Both digests and the total size.
    pub fn finalize(self) -> BlobInfo {
        BlobInfo {
            blake3: Blake3(*self.blake3.finalize().as_bytes()),
            sha256: Sha256(self.sha256.finalize().into()),
            size: self.size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The input pattern of the official BLAKE3 test vectors: byte i is i mod 251.
    fn blake3_vector_input(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Official BLAKE3 test vectors (test_vectors.json of the BLAKE3 repository):
    /// the first 32 bytes of the hash output for each input length.
    const BLAKE3_VECTORS: &[(usize, &str)] = &[
        (
            0,
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
        ),
        (
            1,
            "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
        ),
        (
            1023,
            "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11",
        ),
        (
            1024,
            "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7",
        ),
        (
            1025,
            "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444",
        ),
        (
            2048,
            "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a",
        ),
        (
            4096,
            "015094013f57a5277b59d8475c0501042c0b642e531b0a1c8f58d2163229e969",
        ),
        (
            6145,
            "f1323a8631446cc50536a9f705ee5cb619424d46887f3c376c695b70e0f0507f",
        ),
    ];

    #[test]
    fn blake3_official_vectors() {
        for (len, expected) in BLAKE3_VECTORS {
            let input = blake3_vector_input(*len);
            assert_eq!(Blake3::of(&input).to_hex(), *expected, "length {len}");
            let mut hasher = DualHasher::new();
            // Feed in odd-sized pieces: streaming must equal one-shot.
            for piece in input.chunks(7) {
                hasher.update(piece);
            }
            assert_eq!(hasher.finalize().blake3.to_hex(), *expected, "length {len}");
        }
    }

    /// NIST FIPS 180-4 example vectors (and the NIST CAVP short-message vector for "").
    #[test]
    fn sha256_nist_vectors() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                b"abc",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(Sha256::of(input).to_hex(), *expected);
            assert_eq!(BlobInfo::of(input).sha256.to_hex(), *expected);
        }
        // One million repetitions of "a", fed in streaming pieces.
        let mut hasher = DualHasher::new();
        let block = [b'a'; 1000];
        for _ in 0..1000 {
            hasher.update(&block);
        }
        let info = hasher.finalize();
        assert_eq!(
            info.sha256.to_hex(),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
        assert_eq!(info.size, 1_000_000);
    }

    #[test]
    fn text_forms_parse_with_precise_errors() {
        let b3 = Blake3::of(b"x");
        assert_eq!(b3.to_string().parse::<Blake3>(), Ok(b3));
        assert_eq!(
            b3.to_string().parse::<AnyDigest>(),
            Ok(AnyDigest::Blake3(b3))
        );
        let sha = Sha256::of(b"x");
        assert_eq!(
            sha.to_string().parse::<AnyDigest>(),
            Ok(AnyDigest::Sha256(sha))
        );
        assert_eq!(
            "abc".parse::<AnyDigest>(),
            Err(DigestParseError::MissingPrefix("abc".into()))
        );
        assert_eq!(
            "md5:00".parse::<AnyDigest>(),
            Err(DigestParseError::UnknownAlgorithm("md5".into()))
        );
        assert_eq!(
            "blake3:00".parse::<Blake3>(),
            Err(DigestParseError::BadLength(2))
        );
        let upper = format!("blake3:{}", b3.to_hex().to_uppercase());
        assert!(matches!(
            upper.parse::<Blake3>(),
            Err(DigestParseError::BadHex(_))
        ));
        assert_eq!(
            sha.to_string().parse::<Blake3>(),
            Err(DigestParseError::WrongAlgorithm {
                expected: "blake3",
                actual: "sha256".into()
            })
        );
    }

    #[test]
    fn parallel_updates_equal_sequential_ones() {
        let data: Vec<u8> = (0..(3 * PARALLEL_MIN + 12_345) as u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        // Mixed chunk sizes: below the threshold (inline), at it and above (two threads).
        let cuts = [
            0,
            100,
            100 + PARALLEL_MIN,
            100 + 3 * PARALLEL_MIN,
            data.len(),
        ];
        let mut parallel = DualHasher::new();
        for window in cuts.windows(2) {
            parallel.update_parallel(&data[window[0]..window[1]]);
        }
        assert_eq!(parallel.size(), data.len() as u64);
        let info = parallel.finalize();
        assert_eq!(info, BlobInfo::of(&data));
        assert_eq!(info.blake3, Blake3::of(&data));
        assert_eq!(info.sha256, Sha256::of(&data));
    }

    proptest! {
        #[test]
        fn digest_text_round_trips(bytes in any::<[u8; 32]>()) {
            let b3 = Blake3::from_bytes(bytes);
            prop_assert_eq!(b3.to_string().parse::<Blake3>(), Ok(b3));
            let sha = Sha256::from_bytes(bytes);
            prop_assert_eq!(sha.to_string().parse::<AnyDigest>(), Ok(AnyDigest::Sha256(sha)));
        }

        #[test]
        fn streaming_equals_one_shot(data in proptest::collection::vec(any::<u8>(), 0..5000), split in 0usize..5000) {
            let split = split.min(data.len());
            let mut hasher = DualHasher::new();
            hasher.update(&data[..split]);
            hasher.update(&data[split..]);
            let info = hasher.finalize();
            prop_assert_eq!(info.blake3, Blake3::of(&data));
            prop_assert_eq!(info.sha256, Sha256::of(&data));
            prop_assert_eq!(info.size, data.len() as u64);
        }
    }
}
