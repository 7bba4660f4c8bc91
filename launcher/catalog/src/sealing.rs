//! Credentials at rest and tokens: sealing with ChaCha20-Poly1305 (ring) under a 256-bit key the
//! operator supplies, or that colo generates once as a 0600 file under `$COLO_HOME`; random tokens
//! of which only the SHA-256 is stored.
//!
//! A sealed value is `nonce (12 bytes) ‖ ciphertext ‖ tag`, the nonce random per sealing, and is
//! bound to what it belongs to by the associated data (the volume's row id), so a sealed blob moved
//! to another row does not open. A key file readable by group or others is refused.

use crate::error::{CatalogError, Result};
use base64::Engine;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// What every token starts with, so that a leaked one is recognisable (secret scanners).
pub const TOKEN_PREFIX: &str = "colo_";

pub struct SealingKey {
    key: LessSafeKey,
}

impl SealingKey {
    /// The key in `path` (64 hex digits), generated there with mode 0600 if the file is absent.
    pub fn load_or_create(path: &Path) -> Result<SealingKey> {
        let err = |detail: String| CatalogError::Key {
            path: path.to_path_buf(),
            detail,
        };
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| err(format!("cannot create its folder: {e}")))?;
            }
            let mut bytes = [0u8; 32];
            fill_random(&mut bytes)?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| err(format!("cannot create it: {e}")))?;
            file.write_all(format!("{}\n", hex(&bytes)).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| err(format!("cannot write it: {e}")))?;
            tracing::info!(path = %path.display(), "generated the secret key for stored credentials");
        }
        let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read it: {e}")))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(err(format!(
                "is readable by others (mode {:o}); run chmod 600 on it",
                meta.permissions().mode() & 0o777
            )));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| err(format!("cannot read it: {e}")))?;
        let bytes = unhex(text.trim())
            .filter(|b| b.len() == 32)
            .ok_or_else(|| err("must hold 64 hexadecimal digits (a 256-bit key)".into()))?;
        Self::from_bytes(&bytes).ok_or_else(|| err("is not a usable key".into()))
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<SealingKey> {
        let key = UnboundKey::new(&CHACHA20_POLY1305, bytes).ok()?;
        Some(SealingKey {
            key: LessSafeKey::new(key),
        })
    }

    /// `plaintext` sealed, bound to `context`.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let mut sealed = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut sealed,
            )
            .map_err(|_| CatalogError::Key {
                path: Default::default(),
                detail: "sealing failed".into(),
            })?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plaintext of `sealed`, or `None` when the key, the context or the bytes do not match.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut body)
            .ok()?;
        Some(plain.to_vec())
    }
}

pub(crate) fn fill_random(buf: &mut [u8]) -> Result<()> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| CatalogError::Key {
            path: Default::default(),
            detail: "the system's random source failed".into(),
        })
}

/// A new random token (`colo_` and 43 URL-safe characters: 256 bits).
pub fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes)?;
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// What is stored of a token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_private_and_reloads_to_the_same_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("home/secret.key");
        let key = SealingKey::load_or_create(&path).expect("create");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = key.seal(b"volume 7", b"hunter2").expect("seal");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"), "not in clear");
        let again = SealingKey::load_or_create(&path).expect("reload");
        assert_eq!(
            again.open(b"volume 7", &sealed).as_deref(),
            Some(&b"hunter2"[..])
        );
        assert_eq!(
            again.open(b"volume 8", &sealed),
            None,
            "bound to its context"
        );
        let other = SealingKey::from_bytes(&[7u8; 32]).expect("key");
        assert_eq!(
            other.open(b"volume 7", &sealed),
            None,
            "another key cannot open it"
        );
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret.key");
        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = SealingKey::load_or_create(&path)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        SealingKey::load_or_create(&path).expect("a private key file loads");
        std::fs::write(&path, "short\n").expect("write");
        let err = SealingKey::load_or_create(&path)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("64 hexadecimal digits"), "{err}");
    }

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let a = new_token().expect("token");
        let b = new_token().expect("token");
        assert!(
            a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 43,
            "{a}"
        );
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 32);
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}
