//! ServiceAccount tokens: `lk1.<payload>.<mac>`, the payload naming the account, its uid and the
//! expiry, the MAC a keyed BLAKE3 hash under a key derived from the admin token. A token is
//! valid while it has not expired and its ServiceAccount exists with the same uid (a deleted
//! and recreated account invalidates the old tokens, as bound tokens do).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

const PREFIX: &str = "lk1.";
const CONTEXT: &str = "localkube 2026 service account tokens v1";

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Unix seconds.
    pub expires: i64,
}

/// Signs and verifies tokens.
#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
}

/// Why a token is refused (never contains the token).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("not a localkube service account token")]
    Malformed,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

impl Signer {
    /// A signer whose key derives from the admin token (so tokens survive restarts).
    pub fn new(admin_token: &str) -> Signer {
        Signer {
            key: blake3::derive_key(CONTEXT, admin_token.as_bytes()),
        }
    }

    /// A token for `claims`.
    pub fn issue(&self, claims: &Claims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let mac = blake3::keyed_hash(&self.key, payload.as_bytes());
        format!(
            "{PREFIX}{payload}.{}",
            URL_SAFE_NO_PAD.encode(mac.as_bytes())
        )
    }

    /// The claims of a valid, unexpired token.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let rest = token.strip_prefix(PREFIX).ok_or(TokenError::Malformed)?;
        let (payload, mac) = rest.split_once('.').ok_or(TokenError::Malformed)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| TokenError::Malformed)?;
        let mac: [u8; 32] = mac.try_into().map_err(|_| TokenError::Malformed)?;
        // blake3::Hash compares in constant time.
        if blake3::keyed_hash(&self.key, payload.as_bytes()) != blake3::Hash::from(mac) {
            return Err(TokenError::BadSignature);
        }
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if claims.expires <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            namespace: "a".into(),
            name: "orch".into(),
            uid: "u1".into(),
            expires: 100,
        }
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let signer = Signer::new("admin");
        let token = signer.issue(&claims());
        assert_eq!(signer.verify(&token, 99), Ok(claims()));
        assert_eq!(signer.verify(&token, 100), Err(TokenError::Expired));
    }

    #[test]
    fn another_key_or_a_changed_payload_is_refused() {
        let token = Signer::new("admin").issue(&claims());
        assert_eq!(
            Signer::new("other").verify(&token, 1),
            Err(TokenError::BadSignature)
        );
        let mut forged = claims();
        forged.namespace = "b".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let mac = token.rsplit_once('.').unwrap().1;
        let forged_token = format!("{PREFIX}{forged_payload}.{mac}");
        assert_eq!(
            Signer::new("admin").verify(&forged_token, 1),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            Signer::new("admin").verify("nope", 1),
            Err(TokenError::Malformed)
        );
    }
}
