//! Credentials at rest: ChaCha20-Poly1305 under one 256-bit key.
//!
//! The key comes from `ECHOTRACE_SECRET_KEY` (64 hex digits) or from a key
//! file (64 hex digits), created with mode 0600 on first use; an existing
//! file readable by group or others is refused rather than trusted. Sealed
//! values are `v1.` + hex(nonce ‖ ciphertext ‖ tag) with a fresh random
//! 96-bit nonce each time; they never hold plaintext, and opening one with
//! another key fails cleanly (the AEAD tag does not verify).
//!
//! Plaintext credentials exist only in memory, inside the adapter that uses
//! them; no route, page, log line or audit entry ever carries them.

use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// Environment variable holding the key (64 hex digits).
pub const SECRET_KEY_ENV: &str = "ECHOTRACE_SECRET_KEY";

const PREFIX: &str = "v1.";
const AAD: &[u8] = b"echotrace-exchange-credentials-v1";

/// Why the key or a sealed value could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{SECRET_KEY_ENV} must be 64 hex digits (a 256-bit key)")]
    BadEnvKey,
    #[error("key file {0} must hold 64 hex digits")]
    BadKeyFile(PathBuf),
    #[error("key file {0} is readable by group or others (mode {1:o}); run chmod 600 on it")]
    KeyFileMode(PathBuf, u32),
    #[error("key file {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("OS random source: {0}")]
    Random(String),
    #[error("stored credentials cannot be decrypted with this key (was the key changed?)")]
    Open,
    #[error("credentials are stored but the key file {0} is missing (set {SECRET_KEY_ENV} or restore the file)")]
    Missing(String),
}

/// Seals and opens credentials.
pub struct SecretBox {
    /// The cipher, or (key file not created yet) the file to create it in
    /// when the first credentials are sealed.
    cipher: std::sync::OnceLock<ChaCha20Poly1305>,
    pending: Option<PathBuf>,
    /// Where the key came from (for messages; never the key).
    pub source: String,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

fn parse_hex_key(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    echotrace_signals::digest::to_hex(bytes)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

impl SecretBox {
    /// A box over a raw key.
    pub fn from_key(key: [u8; 32], source: impl Into<String>) -> SecretBox {
        let cipher = std::sync::OnceLock::new();
        let _ = cipher.set(ChaCha20Poly1305::new(Key::from_slice(&key)));
        SecretBox {
            cipher,
            pending: None,
            source: source.into(),
        }
    }

    /// The key from `ECHOTRACE_SECRET_KEY`; else from `key_file` if it
    /// exists (its mode and content checked now); else the file is created
    /// (mode 0600) when the first credentials are sealed, so a deployment
    /// that never stores credentials never writes a key file.
    pub fn from_env_or_file_lazy(key_file: &Path) -> Result<SecretBox, SecretError> {
        if std::env::var(SECRET_KEY_ENV).is_ok_and(|v| !v.trim().is_empty()) || key_file.exists() {
            return SecretBox::from_env_or_file(key_file);
        }
        Ok(SecretBox {
            cipher: std::sync::OnceLock::new(),
            pending: Some(key_file.to_path_buf()),
            source: key_file.display().to_string(),
        })
    }

    fn cipher(&self) -> Result<&ChaCha20Poly1305, SecretError> {
        if let Some(c) = self.cipher.get() {
            return Ok(c);
        }
        let path = self.pending.as_deref().ok_or(SecretError::Open)?;
        let made = SecretBox::load_or_create(path)?;
        let c = made.cipher.get().ok_or(SecretError::Open)?.clone();
        let _ = self.cipher.set(c);
        self.cipher.get().ok_or(SecretError::Open)
    }

    /// The key from `ECHOTRACE_SECRET_KEY`, else from `key_file` (created
    /// with mode 0600 if missing).
    pub fn from_env_or_file(key_file: &Path) -> Result<SecretBox, SecretError> {
        match std::env::var(SECRET_KEY_ENV) {
            Ok(v) if !v.trim().is_empty() => {
                let key = parse_hex_key(&v).ok_or(SecretError::BadEnvKey)?;
                Ok(SecretBox::from_key(key, SECRET_KEY_ENV))
            }
            _ => SecretBox::load_or_create(key_file),
        }
    }

    /// Load the key file, or create it (0600, exclusive create) with a
    /// fresh random key.
    pub fn load_or_create(path: &Path) -> Result<SecretBox, SecretError> {
        let io = |e| SecretError::Io(path.to_path_buf(), e);
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_mode(path)?;
                let key =
                    parse_hex_key(&text).ok_or_else(|| SecretError::BadKeyFile(path.into()))?;
                Ok(SecretBox::from_key(key, path.display().to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::getrandom(&mut key).map_err(|e| SecretError::Random(e.to_string()))?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                match opts.open(path) {
                    Ok(mut f) => {
                        f.write_all(format!("{}\n", hex(&key)).as_bytes())
                            .map_err(io)?;
                        f.sync_all().map_err(io)?;
                        Ok(SecretBox::from_key(key, path.display().to_string()))
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        SecretBox::load_or_create(path)
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Encrypt `plaintext` (a fresh nonce each call).
    pub fn seal(&self, plaintext: &[u8]) -> Result<String, SecretError> {
        let mut nonce = [0u8; 12];
        getrandom::getrandom(&mut nonce).map_err(|e| SecretError::Random(e.to_string()))?;
        let ct = self
            .cipher()?
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: AAD,
                },
            )
            .map_err(|_| SecretError::Open)?;
        let mut all = nonce.to_vec();
        all.extend_from_slice(&ct);
        Ok(format!("{PREFIX}{}", hex(&all)))
    }

    /// Decrypt a value made by [`SecretBox::seal`].
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, SecretError> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(unhex)
            .ok_or(SecretError::Open)?;
        if raw.len() < 12 + 16 {
            return Err(SecretError::Open);
        }
        let (nonce, ct) = raw.split_at(12);
        if self.cipher.get().is_none() && self.pending.as_deref().is_some_and(|p| !p.exists()) {
            return Err(SecretError::Missing(self.source.clone()));
        }
        self.cipher()?
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: AAD })
            .map_err(|_| SecretError::Open)
    }
}

#[cfg(unix)]
fn check_mode(path: &Path) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| SecretError::Io(path.to_path_buf(), e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(SecretError::KeyFileMode(path.to_path_buf(), mode & 0o777));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_path: &Path) -> Result<(), SecretError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_wrong_key() {
        let a = SecretBox::from_key([7; 32], "test");
        let b = SecretBox::from_key([8; 32], "test");
        let s1 = a.seal(b"{\"api_token\":\"123|abc\"}").unwrap();
        let s2 = a.seal(b"{\"api_token\":\"123|abc\"}").unwrap();
        assert_ne!(s1, s2, "fresh nonce each time");
        // The sealed form is `v1.` + hex, so any short token such as "abc" can occur in it by
        // chance (about 1 run in 40 for a 3-hex-digit token). What must never appear is the
        // plaintext itself, raw or hex-encoded; 23 bytes of it match random hex with odds 2^-184.
        let plain = b"{\"api_token\":\"123|abc\"}";
        assert!(!s1.contains("api_token") && !s1.contains("123|abc"));
        assert!(
            !s1.contains(&hex(plain)),
            "the plaintext is not merely hex-encoded"
        );
        assert!(s1.starts_with(PREFIX) && s1.len() == PREFIX.len() + 2 * (12 + plain.len() + 16));
        assert_eq!(a.open(&s1).unwrap(), b"{\"api_token\":\"123|abc\"}");
        assert!(matches!(b.open(&s1), Err(SecretError::Open)));
        assert!(matches!(a.open("v1.zz"), Err(SecretError::Open)));
        assert!(matches!(a.open("plain"), Err(SecretError::Open)));
    }

    #[test]
    fn lazy_key_file_appears_on_first_seal() {
        let dir = std::env::temp_dir().join(format!("et-lazy-{}", std::process::id()));
        let path = dir.join("k.secret");
        let _ = std::fs::remove_dir_all(&dir);
        let b = SecretBox::from_env_or_file_lazy(&path).unwrap();
        assert!(!path.exists(), "no key file until credentials are sealed");
        assert!(matches!(
            b.open("v1.00112233445566778899aabbccddeeff00112233445566778899aabb"),
            Err(SecretError::Missing(_))
        ));
        let sealed = b.seal(b"x").unwrap();
        assert!(path.exists());
        assert_eq!(b.open(&sealed).unwrap(), b"x");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_created_0600_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("et-secret-{}", std::process::id()));
        let path = dir.join("k.secret");
        let _ = std::fs::remove_file(&path);
        let a = SecretBox::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let sealed = a.seal(b"x").unwrap();
        let b = SecretBox::load_or_create(&path).unwrap();
        assert_eq!(b.open(&sealed).unwrap(), b"x");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            SecretBox::load_or_create(&path),
            Err(SecretError::KeyFileMode(_, 0o644))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
