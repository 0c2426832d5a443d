//! Argon2id: passphrase → 32-byte key, with the cost parameters stored next to the salt.

use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::{Error, Result};

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// For repository key files (FORMAT.md §5.1): 64 MiB, 3 passes.
    pub const REPOSITORY: KdfParams = KdfParams {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };

    /// For encrypted plain files, paid once per object (FORMAT.md §3.3): 19 MiB, 2 passes
    /// (OWASP's recommended minimum).
    pub const PLAIN_FILE: KdfParams = KdfParams {
        m_cost_kib: 19 * 1024,
        t_cost: 2,
        p_cost: 1,
    };

    /// Cheap parameters for tests only.
    pub const INSECURE_FAST: KdfParams = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };

    /// Refuses parameters that would take unbounded memory or time from a tampered header.
    pub(crate) fn check(&self) -> Result<()> {
        if self.m_cost_kib > 4 * 1024 * 1024 || self.t_cost > 64 || self.p_cost > 64 {
            return Err(Error::corrupt(format!(
                "argon2id parameters m={} KiB t={} p={} are out of range",
                self.m_cost_kib, self.t_cost, self.p_cost
            )));
        }
        Ok(())
    }

    /// Derives a 32-byte key from a passphrase and salt.
    pub fn derive(&self, passphrase: &Secret, salt: &[u8]) -> Result<[u8; 32]> {
        self.check()?;
        let params =
            Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32)).map_err(|e| {
                Error::invalid(format!(
                    "argon2id parameters m={} KiB t={} p={}",
                    self.m_cost_kib, self.t_cost, self.p_cost
                ))
                .with_source(ArgonError(e))
            })?;
        let mut key = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase.expose().as_bytes(), salt, &mut key)
            .map_err(|e| {
                Error::invalid("deriving a key from the passphrase").with_source(ArgonError(e))
            })?;
        Ok(key)
    }
}

/// `argon2::Error` does not implement `std::error::Error` in every configuration.
#[derive(Debug)]
struct ArgonError(argon2::Error);

impl std::fmt::Display for ArgonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for ArgonError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_key_different_salt_different_key() {
        let pass = Secret::new("pw");
        let a = KdfParams::INSECURE_FAST
            .derive(&pass, b"0123456789abcdef")
            .expect("kdf");
        let b = KdfParams::INSECURE_FAST
            .derive(&pass, b"0123456789abcdef")
            .expect("kdf");
        let c = KdfParams::INSECURE_FAST
            .derive(&pass, b"fedcba9876543210")
            .expect("kdf");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn absurd_parameters_from_a_tampered_header_are_refused() {
        let params = KdfParams {
            m_cost_kib: u32::MAX,
            t_cost: 1,
            p_cost: 1,
        };
        let err = params
            .derive(&Secret::new("pw"), b"0123456789abcdef")
            .expect_err("refused");
        assert_eq!(err.kind(), crate::ErrorKind::Corrupt);
    }
}
