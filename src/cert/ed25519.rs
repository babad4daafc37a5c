//! Ed25519 signing keys for the TLS server through curve25519-dalek, which the NaCl box links
//! already. With this and [`super::x25519`] ring's whole curve25519 code (its Ed25519 scalar
//! arithmetic and base-point tables) stays out of the router binary. Only operator-supplied
//! Ed25519 keys use it (the generated certificate is ECDSA P-256); signatures are RFC 8032
//! Ed25519, byte for byte what ring writes (Ed25519 is deterministic; the tests compare).
//!
//! The arithmetic mod the group order is a few lines of our own ([`reduce`], [`mul_add`]):
//! curve25519-dalek's `Scalar` arithmetic is about 35 KB of 32-bit MIPS code for the three
//! reductions and one product a signature needs. The point multiplications stay dalek's.

use std::sync::Arc;

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::sign::{Signer, SigningKey};
use rustls::{Error, SignatureAlgorithm, SignatureScheme};
use zeroize::Zeroize;

/// Length of a seed (the private key), a public key and each half of a signature.
const LEN: usize = 32;
/// PKCS#8 v1 (RFC 8410) of an Ed25519 key up to the 32 seed bytes.
const PKCS8_V1_PREFIX: &[u8] = &[
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// PKCS#8 v2 (RFC 5958, as ring writes it) up to the seed; the public key follows the seed.
const PKCS8_V2_PREFIX: &[u8] = &[
    0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// `[1] IMPLICIT BIT STRING`, no unused bits: the public key of a v2 PKCS#8.
const PKCS8_V2_PUBLIC_TAG: &[u8] = &[0x81, 0x21, 0x00];
/// SubjectPublicKeyInfo of an Ed25519 key up to the 32 key bytes (RFC 8410).
const SPKI_PREFIX: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The key pair, expanded once from the seed.
struct Expanded {
    /// The secret scalar `a`, clamped (not reduced: only `a·B` and `k·a mod l` use it).
    scalar: [u8; LEN],
    /// The second half of SHA-512(seed), which makes the nonce deterministic.
    prefix: [u8; LEN],
    /// `A = a·B`, compressed.
    public: [u8; LEN],
    /// The public key as SubjectPublicKeyInfo, for rustls's key/certificate match.
    spki: Vec<u8>,
}

impl Drop for Expanded {
    fn drop(&mut self) {
        self.scalar.zeroize();
        self.prefix.zeroize();
    }
}

fn sha512(parts: &[&[u8]]) -> [u8; 64] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA512);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 64];
    out.copy_from_slice(context.finish().as_ref());
    out
}

impl Expanded {
    fn from_seed(seed: &[u8; LEN]) -> Expanded {
        let mut hash = sha512(&[seed]);
        let mut low = [0u8; LEN];
        let mut prefix = [0u8; LEN];
        low.copy_from_slice(&hash[..LEN]);
        prefix.copy_from_slice(&hash[LEN..]);
        hash.zeroize();
        // RFC 8032 §5.1.5: clear the low 3 bits and the top bit, set bit 254.
        low[0] &= 248;
        low[31] &= 127;
        low[31] |= 64;
        let public = EdwardsPoint::mul_base_clamped(low).compress().to_bytes();
        let scalar = low;
        low.zeroize();
        let mut spki = SPKI_PREFIX.to_vec();
        spki.extend_from_slice(&public);
        Expanded {
            scalar,
            prefix,
            public,
            spki,
        }
    }

    /// RFC 8032 §5.1.6: `R = r·B`, `S = r + SHA-512(R ‖ A ‖ M)·a`, with
    /// `r = SHA-512(prefix ‖ M)`, both reduced mod the group order.
    fn sign(&self, message: &[u8]) -> [u8; 2 * LEN] {
        let mut r = reduce(&sha512(&[&self.prefix, message]));
        let mut r_bytes = to_bytes(&r);
        // r < l, so its bytes are a canonical scalar; no arithmetic on it happens in dalek.
        #[allow(deprecated)]
        let big_r = EdwardsPoint::mul_base(&Scalar::from_bits(r_bytes))
            .compress()
            .to_bytes();
        let k = reduce(&sha512(&[&big_r, &self.public, message]));
        let mut a = limbs(&self.scalar);
        let s = mul_add(&k, &a, &r);
        r.zeroize();
        r_bytes.zeroize();
        a.zeroize();
        let mut signature = [0u8; 2 * LEN];
        signature[..LEN].copy_from_slice(&big_r);
        signature[LEN..].copy_from_slice(&to_bytes(&s));
        signature
    }
}

/// A number below 2^256 as eight little-endian 32-bit limbs.
type Limbs = [u32; 8];

/// The group order l = 2^252 + 27742317777372353535851937790883648493.
const L: Limbs = [
    0x5cf5_d3ed,
    0x5812_631a,
    0xa2f7_9cd6,
    0x14de_f9de,
    0,
    0,
    0,
    0x1000_0000,
];

/// Little-endian bytes to limbs.
fn limbs(bytes: &[u8; LEN]) -> Limbs {
    let mut out = [0u32; 8];
    for (limb, chunk) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *limb = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    out
}

/// Limbs to little-endian bytes.
fn to_bytes(limbs: &Limbs) -> [u8; LEN] {
    let mut out = [0u8; LEN];
    for (chunk, limb) in out.chunks_exact_mut(4).zip(limbs) {
        chunk.copy_from_slice(&limb.to_le_bytes());
    }
    out
}

/// A little-endian number of any length, mod l. One bit at a time from the top:
/// `acc = 2·acc + bit`, then `acc − l` when that does not borrow. `acc < l < 2^253`
/// throughout, so `2·acc + 1` fits eight limbs. Constant time: the same operations for
/// every input of one length, the choice made with a mask, not a branch.
fn reduce(bytes: &[u8]) -> Limbs {
    let mut acc = [0u32; 8];
    for byte in bytes.iter().rev() {
        for bit in (0..8).rev() {
            let mut carry = u32::from((byte >> bit) & 1);
            for limb in acc.iter_mut() {
                let top = *limb >> 31;
                *limb = (*limb << 1) | carry;
                carry = top;
            }
            subtract_l_unless_below(&mut acc);
        }
    }
    acc
}

/// `acc − l` when `acc ≥ l`, else `acc`, without a branch on `acc`.
fn subtract_l_unless_below(acc: &mut Limbs) {
    let mut diff = [0u32; 8];
    let mut borrow = 0u64;
    for ((d, &a), &l) in diff.iter_mut().zip(acc.iter()).zip(L.iter()) {
        let wide = u64::from(a).wrapping_sub(u64::from(l)).wrapping_sub(borrow);
        *d = wide as u32;
        borrow = wide >> 63;
    }
    // borrow = 1: acc < l, keep acc (mask all ones); borrow = 0: take the difference.
    let keep = 0u32.wrapping_sub(borrow as u32);
    for (a, d) in acc.iter_mut().zip(diff) {
        *a = (*a & keep) | (d & !keep);
    }
}

/// `(k·a + r) mod l`: the 512-bit product and sum written out, then reduced.
fn mul_add(k: &Limbs, a: &Limbs, r: &Limbs) -> Limbs {
    let mut wide = [0u32; 16];
    for (i, &x) in k.iter().enumerate() {
        let mut carry = 0u64;
        for (j, &y) in a.iter().enumerate() {
            // At most (2^32 − 1)^2 + 2·(2^32 − 1) = 2^64 − 1: no overflow.
            let v = u64::from(x) * u64::from(y) + u64::from(wide[i + j]) + carry;
            wide[i + j] = v as u32;
            carry = v >> 32;
        }
        wide[i + 8] = carry as u32;
    }
    // k·a < 2^509 and r < 2^253: the sum fits 512 bits, the last carry is always 0.
    let mut carry = 0u64;
    for (i, w) in wide.iter_mut().enumerate() {
        let v = u64::from(*w) + u64::from(r.get(i).copied().unwrap_or(0)) + carry;
        *w = v as u32;
        carry = v >> 32;
    }
    let mut bytes = [0u8; 64];
    for (chunk, limb) in bytes.chunks_exact_mut(4).zip(&wide) {
        chunk.copy_from_slice(&limb.to_le_bytes());
    }
    let out = reduce(&bytes);
    bytes.zeroize();
    wide.zeroize();
    out
}

/// Reads an Ed25519 PKCS#8 key (v1, or v2 whose public key must match the seed).
fn parse_pkcs8(der: &[u8]) -> Option<Expanded> {
    if let Some(seed) = der.strip_prefix(PKCS8_V1_PREFIX) {
        let seed: &[u8; LEN] = seed.try_into().ok()?;
        return Some(Expanded::from_seed(seed));
    }
    let rest = der.strip_prefix(PKCS8_V2_PREFIX)?;
    let (seed, rest) = rest.split_at_checked(LEN)?;
    let public = rest.strip_prefix(PKCS8_V2_PUBLIC_TAG)?;
    let expanded = Expanded::from_seed(seed.try_into().ok()?);
    (public == expanded.public).then_some(expanded)
}

/// An Ed25519 key rustls can sign handshakes with.
#[derive(Clone)]
pub struct Ed25519Key(Arc<Expanded>);

impl std::fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ed25519Key")
    }
}

impl Ed25519Key {
    /// The key in a PKCS#8 document, or `None` when it is not an Ed25519 key.
    pub fn from_pkcs8(der: &[u8]) -> Option<Ed25519Key> {
        parse_pkcs8(der).map(|expanded| Ed25519Key(Arc::new(expanded)))
    }
}

impl SigningKey for Ed25519Key {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ED25519)
            .then(|| Box::new(self.clone()) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(&self.0.spki[..]))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ED25519
    }
}

impl Signer for Ed25519Key {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(self.0.sign(message).to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

    /// RFC 8032 §7.1 test 2: one-byte message.
    #[test]
    fn rfc8032_vector() {
        let hex = |text: &str| -> Vec<u8> {
            (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
                .collect()
        };
        let seed = hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb");
        let public = hex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
        let signature = hex(
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        );
        let expanded = Expanded::from_seed(seed.as_slice().try_into().unwrap());
        assert_eq!(expanded.public.to_vec(), public);
        assert_eq!(expanded.sign(&[0x72]).to_vec(), signature);
    }

    /// Same public key and byte-identical signatures as ring for ring's own PKCS#8 (v2) and
    /// for the v1 form OpenSSL writes; ring verifies them.
    #[test]
    fn signs_like_ring() {
        let rng = ring::rand::SystemRandom::new();
        for round in 0..8 {
            let v2 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            let theirs = Ed25519KeyPair::from_pkcs8(v2.as_ref()).unwrap();
            let seed = &v2.as_ref()[PKCS8_V2_PREFIX.len()..][..LEN];
            let mut v1 = PKCS8_V1_PREFIX.to_vec();
            v1.extend_from_slice(seed);
            for der in [v2.as_ref(), &v1[..]] {
                let ours = Ed25519Key::from_pkcs8(der).unwrap();
                assert_eq!(&ours.0.public[..], theirs.public_key().as_ref());
                let message = vec![round as u8; 100 * round];
                let signature = ours.sign(&message).unwrap();
                assert_eq!(signature, theirs.sign(&message).as_ref());
                UnparsedPublicKey::new(&ED25519, theirs.public_key().as_ref())
                    .verify(&message, &signature)
                    .unwrap();
            }
        }
    }

    /// The mod-l arithmetic against curve25519-dalek's own, on random and edge values.
    #[test]
    fn arithmetic_matches_dalek() {
        let rng = ring::rand::SystemRandom::new();
        let random = |len: usize| {
            let mut bytes = vec![0u8; len];
            ring::rand::SecureRandom::fill(&rng, &mut bytes).unwrap();
            bytes
        };
        let l = to_bytes(&L);
        let mut l_minus_1 = l;
        l_minus_1[0] -= 1;
        let mut l_plus_1 = l;
        l_plus_1[0] += 1;
        let mut wides: Vec<[u8; 64]> = (0..300).map(|_| random(64).try_into().unwrap()).collect();
        for edge in [[0u8; LEN], [0xff; LEN], l, l_minus_1, l_plus_1] {
            let mut wide = [0u8; 64];
            wide[..LEN].copy_from_slice(&edge);
            wides.push(wide);
            wide[LEN..].copy_from_slice(&edge);
            wides.push(wide);
        }
        wides.push([0xff; 64]);
        for wide in &wides {
            let ours = to_bytes(&reduce(wide));
            assert_eq!(ours, Scalar::from_bytes_mod_order_wide(wide).to_bytes());
        }
        for pair in wides.chunks_exact(3) {
            let k = reduce(&pair[0]);
            let r = reduce(&pair[1]);
            let a: [u8; LEN] = pair[2][..LEN].try_into().unwrap();
            let ours = to_bytes(&mul_add(&k, &limbs(&a), &r));
            let theirs = Scalar::from_bytes_mod_order(to_bytes(&r))
                + Scalar::from_bytes_mod_order(to_bytes(&k)) * Scalar::from_bytes_mod_order(a);
            assert_eq!(ours, theirs.to_bytes());
        }
    }

    /// Many keys and message lengths, byte for byte against ring.
    #[test]
    fn many_signatures_like_ring() {
        let rng = ring::rand::SystemRandom::new();
        for round in 0..64usize {
            let v2 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            let theirs = Ed25519KeyPair::from_pkcs8(v2.as_ref()).unwrap();
            let ours = Ed25519Key::from_pkcs8(v2.as_ref()).unwrap();
            let mut message = vec![0u8; round * 7];
            ring::rand::SecureRandom::fill(&rng, &mut message).unwrap();
            assert_eq!(
                ours.sign(&message).unwrap(),
                theirs.sign(&message).as_ref(),
                "round {round}"
            );
        }
    }

    #[test]
    fn other_documents_are_refused() {
        let rng = ring::rand::SystemRandom::new();
        let v2 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        // A v2 document whose public key belongs to another seed.
        let mut wrong = v2.as_ref().to_vec();
        let last = wrong.len() - 1;
        wrong[last] ^= 1;
        assert!(Ed25519Key::from_pkcs8(&wrong).is_none());
        assert!(Ed25519KeyPair::from_pkcs8_maybe_unchecked(&wrong).is_err());
        // Truncated, extended, or an ECDSA key.
        assert!(Ed25519Key::from_pkcs8(&v2.as_ref()[..v2.as_ref().len() - 1]).is_none());
        let mut longer = v2.as_ref().to_vec();
        longer.push(0);
        assert!(Ed25519Key::from_pkcs8(&longer).is_none());
        let ec = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &rng,
        )
        .unwrap();
        assert!(Ed25519Key::from_pkcs8(ec.as_ref()).is_none());
        // The scheme is offered only to peers that offer Ed25519.
        let key = Ed25519Key::from_pkcs8(v2.as_ref()).unwrap();
        assert!(key
            .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
            .is_none());
        assert!(key.choose_scheme(&[SignatureScheme::ED25519]).is_some());
    }
}
