//! One-way secrets: passwords (argon2id) and opaque tokens (SHA-256 of 256 random bits).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// Hashes (and verifications) running at once: one per core. Each holds its memory cost
/// ([`PARAMS`]: 7 MiB; a stored hash of older parameters, theirs) for its duration, so a burst of sign-ups or logins (or someone sending many) would otherwise start
/// as many blocking threads, each with its own allocator arena that keeps the memory after
/// (1,000 sign-ups 16 at a time left the command API at 3.2 GiB resident). More at once would
/// not finish sooner: the work is CPU-bound.
static HASHING: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
});

/// argon2id's cost for new hashes: 7 MiB and five passes, one lane. OWASP's password storage
/// cheat sheet lists it among five settings of equal strength, from 46 MiB and one pass to
/// this one; the work (memory times passes, 35 MiB) is about the 19 MiB and two passes of the
/// crate's defaults, which this service used before. With two hashes at once under a burst of
/// sign-ups, the smaller block took 24 MiB off the command API's peak (`docs/scaling.md`, "The
/// command API's peak: the hashes"). Hashes of the older settings still verify (a hash carries
/// its parameters), and are replaced at the member's next login ([`needs_rehash`]).
const PARAMS: (u32, u32, u32) = (7 * 1024, 5, 1);

fn argon2() -> Argon2<'static> {
    let (m, t, p) = PARAMS;
    let params = Params::new(m, t, p, None).expect("argon2 parameters within bounds");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes with argon2id at [`PARAMS`], off the async threads, at most [`HASHING`] at once.
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    let _permit = HASHING.acquire().await?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
    })
    .await?
}

/// A hash of a password no one has, at [`PARAMS`], to spend the same time on unknown users.
/// (No password gives this output; verifying against it costs what a real hash of these
/// parameters does.)
const DUMMY_HASH: &str = "$argon2id$v=19$m=7168,t=5,p=1$c29tZXNhbHRzb21lc2FsdA$0nZ7e5QH5fQ6l3oB3s2b8aZKq4m7bq3kqvV8oGfQm1c";

/// Whether a stored hash was made with other settings than [`PARAMS`] (or another
/// algorithm): after a login that verified it, the password is hashed again at today's.
pub fn needs_rehash(stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return true;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return true;
    };
    let (m, t, p) = PARAMS;
    parsed.algorithm != argon2::ARGON2ID_IDENT
        || parsed.version != Some(Version::V0x13.into())
        || (params.m_cost(), params.t_cost(), params.p_cost()) != (m, t, p)
}

/// Verifies in constant time for the hash; `None` runs against a dummy hash and fails, so an
/// unknown account costs what a known one does.
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    let Ok(_permit) = HASHING.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        let stored = hash.as_deref().unwrap_or(DUMMY_HASH);
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        // The hash's own parameters, whatever today's are.
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
            && hash.is_some()
    })
    .await
    .unwrap_or(false)
}

/// An opaque token (refresh tokens, invitations): `<tenant id>.<256 random bits>`. The
/// tenant prefix lets the server open the right tenant's transaction; the random part is the
/// secret, and only its hash is stored.
pub fn new_token(tenant_id: Uuid) -> String {
    let secret: [u8; 32] = rand::random();
    format!("{tenant_id}.{}", URL_SAFE_NO_PAD.encode(secret))
}

/// The tenant a token of [`new_token`] was issued in.
pub fn tenant_of_token(token: &str) -> Option<Uuid> {
    token.split_once('.')?.0.parse().ok()
}

/// SHA-256 of a token: how API keys, refresh tokens, invitations and verify tokens are stored.
pub fn sha256(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery".into(), Some(hash.clone())).await);
        assert!(!verify_password("wrong".into(), Some(hash.clone())).await);
        assert!(!verify_password("anything".into(), None).await);
        assert!(
            !needs_rehash(DUMMY_HASH),
            "the dummy hash costs what a verification of a member's hash does"
        );
        assert!(!needs_rehash(&hash));
    }

    /// The crate's defaults, which this service hashed with before [`PARAMS`].
    const OLDER: &str = "$argon2id$v=19$m=19456,t=2,p=1$YWJjZGVmZ2hpamtsbW5vcA$tYM9MB84HzixZzEE9k31RooSQOXU5MDh49LUoxVPEUY";

    #[tokio::test]
    async fn a_hash_of_older_settings_still_verifies_and_asks_to_be_replaced() {
        assert!(verify_password("correct horse battery staple".into(), Some(OLDER.into())).await);
        assert!(!verify_password("wrong".into(), Some(OLDER.into())).await);
        assert!(needs_rehash(OLDER));
        assert!(needs_rehash("not a hash"));
    }

    #[test]
    fn tokens_carry_their_tenant_and_are_unique() {
        let t = Uuid::new_v4();
        let a = new_token(t);
        assert_eq!(tenant_of_token(&a), Some(t));
        assert_ne!(a, new_token(t));
        assert_eq!(sha256(&a).len(), 32);
        assert_eq!(tenant_of_token("not-a-token"), None);
    }
}
