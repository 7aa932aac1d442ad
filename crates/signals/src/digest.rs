//! Cryptographic digests of raw bytes: MD5 and SHA-256, as lowercase hex.
//!
//! These are exact-match signals: they identify byte-identical re-uploads
//! and are what many hash-sharing programmes (GIFCT, ThreatExchange
//! `photo_md5` / `video_md5`) exchange alongside perceptual hashes. MD5 is
//! kept only for interoperability; it is not collision resistant and must
//! never be the sole basis of a decision.

use md5::{Digest as _, Md5};
use sha2::Sha256;

/// Lowercase hex MD5 of `bytes` (32 characters).
pub fn md5_hex(bytes: &[u8]) -> String {
    to_hex(&Md5::digest(bytes))
}

/// Lowercase hex SHA-256 of `bytes` (64 characters).
pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&Sha256::digest(bytes))
}

/// Both digests in one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digests {
    pub md5: String,
    pub sha256: String,
}

/// MD5 and SHA-256 of `bytes`.
pub fn digests(bytes: &[u8]) -> Digests {
    Digests {
        md5: md5_hex(bytes),
        sha256: sha256_hex(bytes),
    }
}

/// Lowercase hex of `bytes`: the one hex encoder every crate uses for
/// digests, key hashes and signatures.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

/// True when `s` is exactly `len` ASCII hex digits (either case): the shape
/// check for md5 (32) and sha256 / PDQ (64) values.
pub fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // RFC 1321 and FIPS 180-2 test vectors.
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let d = digests(b"abc");
        assert_eq!(d.md5, md5_hex(b"abc"));
        assert_eq!(d.sha256, sha256_hex(b"abc"));
    }
}
