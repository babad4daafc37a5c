//! TLS key exchange X25519 through curve25519-dalek, which the NaCl box of every DERP login
//! links already, so the binary carries one X25519 instead of two (ring's own goes). Used by
//! the server's and the client's crypto provider in place of ring's X25519 group; the wire
//! behaviour is the same (RFC 7748 X25519, named group 29, all-zero shared secrets refused
//! as RFC 8446 §7.4.2 requires).

use curve25519_dalek::montgomery::MontgomeryPoint;
use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::ffdhe_groups::FfdheGroup;
use rustls::{Error, NamedGroup, PeerMisbehaved};
use zeroize::Zeroize;

/// Length of an X25519 public key and shared secret.
const KEY_LEN: usize = 32;

/// The X25519 key exchange group for rustls.
#[derive(Debug)]
pub struct X25519;

/// The one instance the providers list.
pub static X25519_GROUP: &dyn SupportedKxGroup = &X25519;

impl SupportedKxGroup for X25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let mut secret = [0u8; KEY_LEN];
        getrandom::getrandom(&mut secret).map_err(|_| Error::FailedToGetRandomBytes)?;
        let public = MontgomeryPoint::mul_base_clamped(secret).to_bytes();
        Ok(Box::new(Ephemeral { secret, public }))
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// One handshake's ephemeral key pair; the secret is wiped when dropped.
struct Ephemeral {
    secret: [u8; KEY_LEN],
    public: [u8; KEY_LEN],
}

impl Drop for Ephemeral {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

/// X25519 of `secret` and the peer's public key; `None` for a key of the wrong length or
/// an all-zero result (a small-order peer point).
fn agree(secret: [u8; KEY_LEN], peer: &[u8]) -> Option<[u8; KEY_LEN]> {
    let peer: [u8; KEY_LEN] = peer.try_into().ok()?;
    let shared = MontgomeryPoint(peer).mul_clamped(secret).to_bytes();
    // Constant time over the secret bytes: OR them all, then look at the result once.
    let any = shared.iter().fold(0u8, |acc, byte| acc | byte);
    (any != 0).then_some(shared)
}

impl ActiveKeyExchange for Ephemeral {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, Error> {
        agree(self.secret, peer_pub_key)
            .map(|shared| SharedSecret::from(&shared[..]))
            .ok_or(Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyShare))
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(text: &str) -> [u8; KEY_LEN] {
        let mut out = [0u8; KEY_LEN];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// RFC 7748 §6.1: Alice's and Bob's key pairs and their shared secret.
    #[test]
    fn rfc7748_vectors() {
        let alice = hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let alice_pub = hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        let bob = hex32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        let bob_pub = hex32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        let shared = hex32("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(
            MontgomeryPoint::mul_base_clamped(alice).to_bytes(),
            alice_pub
        );
        assert_eq!(MontgomeryPoint::mul_base_clamped(bob).to_bytes(), bob_pub);
        assert_eq!(agree(alice, &bob_pub), Some(shared));
        assert_eq!(agree(bob, &alice_pub), Some(shared));
    }

    /// The same secret as ring's X25519 computes, for random keys both ways.
    #[test]
    fn agrees_with_ring() {
        use ring::agreement;
        let rng = ring::rand::SystemRandom::new();
        for _ in 0..16 {
            let ours = X25519.start().unwrap();
            let theirs =
                agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng).unwrap();
            let their_pub = theirs.compute_public_key().unwrap();
            let ring_secret = agreement::agree_ephemeral(
                theirs,
                &agreement::UnparsedPublicKey::new(&agreement::X25519, ours.pub_key()),
                |secret| secret.to_vec(),
            )
            .unwrap();
            let our_secret = ours.complete(their_pub.as_ref()).unwrap();
            assert_eq!(our_secret.secret_bytes(), &ring_secret[..]);
        }
    }

    #[test]
    fn bad_peer_keys_are_refused() {
        // Wrong lengths.
        assert!(X25519.start().unwrap().complete(&[9u8; 31]).is_err());
        assert!(X25519.start().unwrap().complete(&[9u8; 33]).is_err());
        // Small-order points give an all-zero secret (RFC 7748 §6.1): 0 and 1.
        assert!(X25519.start().unwrap().complete(&[0u8; 32]).is_err());
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(X25519.start().unwrap().complete(&one).is_err());
        let kx = X25519.start().unwrap();
        assert_eq!(kx.group(), NamedGroup::X25519);
        assert_eq!(kx.pub_key().len(), KEY_LEN);
    }
}
