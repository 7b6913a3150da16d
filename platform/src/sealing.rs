//! Secrets at rest (a tenant's WhatsApp token and app secret): sealed by the command API,
//! opened by the command API (signatures) and the sender (sending).

use base64::Engine as _;

/// Encrypts credentials at rest (AES-256-GCM, a fresh nonce per value, stored before the
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
