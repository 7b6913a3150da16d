//! Secrets that must be read back (WhatsApp tokens and app secrets, TOTP secrets, stored
//! idempotent answers): sealed with AES-256-GCM under the platform's key.

use base64::Engine as _;

/// Encrypts secrets at rest (AES-256-GCM, a fresh nonce per value, stored before the
/// ciphertext). The key comes from settings and never touches the database.
#[derive(Clone)]
pub struct Sealer(aes_gcm::Aes256Gcm);

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// From a base64 key of 32 bytes.
    pub fn from_base64(key: &str) -> anyhow::Result<Self> {
        use aes_gcm::KeyInit as _;
        let bytes = base64::engine::general_purpose::STANDARD.decode(key.trim())?;
        anyhow::ensure!(
            bytes.len() == 32,
            "the encryption key must be 32 bytes (base64)"
        );
        Ok(Self(aes_gcm::Aes256Gcm::new_from_slice(&bytes)?))
    }

    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        use aes_gcm::aead::{Aead as _, AeadCore as _};
        let nonce = aes_gcm::Aes256Gcm::generate_nonce(&mut aes_gcm::aead::OsRng);
        let mut sealed = nonce.to_vec();
        sealed.extend(
            self.0
                .encrypt(&nonce, plaintext)
                .expect("AES-GCM encrypts any length"),
        );
        sealed
    }

    /// The plaintext, or `None` when the value was sealed with another key or tampered with.
    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        use aes_gcm::aead::Aead as _;
        if sealed.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(12);
        self.0
            .decrypt(aes_gcm::Nonce::from_slice(nonce), ciphertext)
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_untouched() {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let sealer = Sealer::from_base64(&key).unwrap();
        let sealed = sealer.seal(b"EAAG-token");
        assert_ne!(&sealed[12..], b"EAAG-token");
        assert_eq!(sealer.open(&sealed).as_deref(), Some(&b"EAAG-token"[..]));
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert_eq!(sealer.open(&tampered), None);
        let other =
            Sealer::from_base64(&base64::engine::general_purpose::STANDARD.encode([8u8; 32]))
                .unwrap();
        assert_eq!(other.open(&sealed), None);
        assert!(Sealer::from_base64("c2hvcnQ=").is_err());
    }
}
