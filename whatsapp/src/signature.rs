//! `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`, checked over the exact
//! bytes received and compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Whether `header` has the shape of a signature (`sha256=` and 64 hex digits), whatever it
/// signs: what is checked before the body is read at all.
pub fn is_well_formed(header: &str) -> bool {
    header
        .trim()
        .strip_prefix("sha256=")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `header` is the signature of `body` under `app_secret`.
pub fn verify_signature(app_secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_signature) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(signature) = hex::decode(hex_signature) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(app_secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// The header value for `body` (fakes and tests sign with it).
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_secret_and_exact_bytes() {
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let header = sign(b"secret", body);
        assert!(verify_signature(b"secret", body, &header));
        assert!(!verify_signature(b"other", body, &header));
        assert!(
            !verify_signature(
                b"secret",
                br#"{"object": "whatsapp_business_account"}"#,
                &header
            ),
            "re-serialized JSON differs"
        );
        assert!(!verify_signature(
            b"secret",
            body,
            header.trim_start_matches("sha256=")
        ));
        assert!(!verify_signature(b"secret", body, "sha256=zz"));
        assert!(!verify_signature(b"secret", body, ""));
        assert!(is_well_formed(&header));
        for bad in [
            "",
            "sha256=",
            "sha256=zz",
            "sha1=00",
            &header[..header.len() - 1],
        ] {
            assert!(!is_well_formed(bad), "{bad}");
        }
    }
}
