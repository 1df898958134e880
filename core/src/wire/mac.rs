//! The keyed MAC that authenticates network frames (`relaySecret` in the
//! plugin, `--udp-secret` in the relay): whoever can reach the relay's UDP
//! port but does not hold the secret cannot make it accept a record.
//!
//! SipHash-2-4 with 128-bit output: a PRF designed for short inputs, about
//! a tenth of HMAC-SHA256's cost on a ~200-byte frame and a few hundred
//! bytes of code in the guest (which pays it on Traefik's threads).
//!
//! The 128-bit key is derived from the secret string (ends trimmed of ASCII
//! whitespace, so a trailing newline in a mounted file does not matter) as
//! SipHash-2-4-128 of its bytes under a fixed domain key. The derivation
//! adds no strength: the secret must carry it, hence at least
//! [`MIN_SECRET_LEN`] characters (e.g. `openssl rand -hex 32`).

use siphasher::sip128::SipHasher24;
use std::fmt;

/// Bytes of MAC appended to a frame.
pub const MAC_LEN: usize = 16;
/// The shortest secret accepted, in bytes (after trimming).
pub const MIN_SECRET_LEN: usize = 32;
/// The longest secret accepted: far above any generated one, and bounded
/// so that a pasted file by mistake is caught.
pub const MAX_SECRET_LEN: usize = 1024;

/// Separates this use of SipHash from any other keyed with the same secret.
const DERIVE_KEY: [u8; 16] = *b"tdp relaySecret1";

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretError {
    /// Fewer than [`MIN_SECRET_LEN`] bytes after trimming.
    TooShort(usize),
    /// More than [`MAX_SECRET_LEN`] bytes.
    TooLong(usize),
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(n) => write!(
                f,
                "is {n} characters long; a secret needs at least {MIN_SECRET_LEN} (e.g. the output of `openssl rand -hex 32`)"
            ),
            Self::TooLong(n) => write!(
                f,
                "is {n} characters long; at most {MAX_SECRET_LEN} are accepted"
            ),
        }
    }
}

impl std::error::Error for SecretError {}

/// A key derived from a valid secret. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct MacKey([u8; 16]);

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacKey(..)")
    }
}

impl MacKey {
    /// Validates `secret` and derives its key.
    pub fn from_secret(secret: &str) -> Result<Self, SecretError> {
        let s = secret.trim_matches(|c: char| c.is_ascii_whitespace());
        if s.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort(s.len()));
        }
        if s.len() > MAX_SECRET_LEN {
            return Err(SecretError::TooLong(s.len()));
        }
        let key = SipHasher24::new_with_key(&DERIVE_KEY)
            .hash(s.as_bytes())
            .as_bytes();
        Ok(Self(key))
    }

    /// The MAC of `bytes`.
    pub fn mac(&self, bytes: &[u8]) -> [u8; MAC_LEN] {
        SipHasher24::new_with_key(&self.0).hash(bytes).as_bytes()
    }

    /// Whether `tag` is the MAC of `bytes`, compared in constant time.
    pub fn verify(&self, bytes: &[u8], tag: &[u8]) -> bool {
        let want = self.mac(bytes);
        tag.len() == MAC_LEN && want.iter().zip(tag).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn siphash_2_4_128_reference_vector() {
        // vectors_sip128[0] of the SipHash reference implementation: key
        // 00..0f, empty message.
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        assert_eq!(
            SipHasher24::new_with_key(&key).hash(b"").as_bytes(),
            [
                0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55,
                0x02, 0x93
            ]
        );
        assert_eq!(MacKey(key).mac(b""), MacKey(key).mac(&[]));
    }

    #[test]
    fn secrets_are_validated_and_trimmed() {
        assert_eq!(
            MacKey::from_secret("short").map(|_| ()),
            Err(SecretError::TooShort(5))
        );
        assert_eq!(
            MacKey::from_secret(&format!("  {}  ", &SECRET[1..])).map(|_| ()),
            Err(SecretError::TooShort(31)),
            "whitespace does not count"
        );
        assert_eq!(
            MacKey::from_secret(&"x".repeat(1025)).map(|_| ()),
            Err(SecretError::TooLong(1025))
        );
        assert_eq!(
            SecretError::TooShort(5).to_string(),
            "is 5 characters long; a secret needs at least 32 (e.g. the output of `openssl rand -hex 32`)"
        );
        let a = MacKey::from_secret(SECRET).expect("valid");
        assert_eq!(
            MacKey::from_secret(&format!("{SECRET}\n")).expect("valid"),
            a
        );
        assert_ne!(
            MacKey::from_secret(&format!("{SECRET}0")).expect("valid"),
            a
        );
        assert_eq!(format!("{a:?}"), "MacKey(..)");
    }

    #[test]
    fn verify_accepts_only_the_exact_mac() {
        let k = MacKey::from_secret(SECRET).expect("valid");
        let other = MacKey::from_secret(&SECRET.replace('0', "1")).expect("valid");
        let msg = b"TD\x01\x05frame bytes";
        let tag = k.mac(msg);
        assert!(k.verify(msg, &tag));
        assert!(!other.verify(msg, &tag), "another key");
        assert!(!k.verify(b"TD\x01\x05frame bytez", &tag), "other bytes");
        assert!(!k.verify(msg, &tag[..15]), "short tag");
        assert!(!k.verify(msg, &[0u8; 16]), "zero tag");
        for i in 0..MAC_LEN {
            let mut bad = tag;
            bad[i] ^= 1;
            assert!(!k.verify(msg, &bad), "byte {i}");
        }
    }
}
