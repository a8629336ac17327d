//! Seeded randomness: every random choice (initial weights, data windows, spot checks) is
//! derived from a labelled SHA-256 of its inputs, so any party can recompute it.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

/// A generator seeded from a label and a list of integers.
pub fn derive_rng(label: &str, parts: &[u64]) -> ChaCha8Rng {
    ChaCha8Rng::from_seed(derive_seed(label, parts))
}

/// The 32-byte seed behind [`derive_rng`].
pub fn derive_seed(label: &str, parts: &[u64]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"agora-training/");
    h.update((label.len() as u64).to_le_bytes());
    h.update(label.as_bytes());
    for p in parts {
        h.update(p.to_le_bytes());
    }
    h.finalize().into()
}

/// A uniform draw in the open interval (0, 1), from 53 random bits.
pub fn uniform_open(rng: &mut impl RngCore) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// A uniform integer in `0..n` (`n > 0`), without modulo bias worth caring about at 64 bits.
pub fn below(rng: &mut impl RngCore, n: u64) -> u64 {
    ((u128::from(rng.next_u64()) * u128::from(n.max(1))) >> 64) as u64
}

/// `n` standard-normal values times `std` (Box–Muller in f64, then rounded to f32), so the
/// result is identical on every platform.
pub fn normal_vec(rng: &mut impl RngCore, n: usize, std: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let u1 = uniform_open(rng);
        let u2 = uniform_open(rng);
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        out.push((r * t.cos() * std) as f32);
        if out.len() < n {
            out.push((r * t.sin() * std) as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_draws() {
        let a = normal_vec(&mut derive_rng("x", &[1, 2]), 5, 1.0);
        let b = normal_vec(&mut derive_rng("x", &[1, 2]), 5, 1.0);
        let c = normal_vec(&mut derive_rng("x", &[1, 3]), 5, 1.0);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn normal_draws_have_the_right_moments() {
        let v = normal_vec(&mut derive_rng("m", &[]), 20_000, 2.0);
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / v.len() as f64;
        assert!(mean.abs() < 0.05, "{mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.05, "{var}");
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = derive_rng("b", &[]);
        assert!((0..1000).all(|_| below(&mut r, 7) < 7));
    }
}
