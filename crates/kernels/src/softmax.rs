//! The log-softmax of a row of logits, with the entropy and the log-probability variance
//! of its distribution, from one exponential per entry.
//!
//! A validator scoring a text needs all three at every scored position, over the whole
//! vocabulary: with `u = l − max`, `e = exp(u)`, `S = Σ e`, `A = Σ e·u` and `B = Σ e·u²`,
//! the log-probabilities are `u − ln S`, the entropy `ln S − A/S` and the variance of the
//! log-probability `B/S − (A/S)²`.

use crate::KernelError;

/// Sums per lane: sixteen, so that the loops vectorize.
const LANES: usize = 16;

/// What a distribution's log-probabilities say about it as a whole.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distribution {
    /// `−Σ p log p`, in nats.
    pub entropy: f32,
    /// `Σ p (log p)² − entropy²`: the variance of the log-probability of a drawn token.
    pub logprob_variance: f32,
}

/// Writes the log-softmax of `logits` into `out` and returns the distribution's entropy
/// and variance. Refuses rows that are empty, of another length than `out`, or hold a
/// non-finite logit (a masked `-inf` entry included: callers with masks use a reference
/// path that gives such entries probability zero).
pub fn log_softmax(logits: &[f32], out: &mut [f32]) -> Result<Distribution, KernelError> {
    if logits.is_empty() || logits.len() != out.len() {
        return Err(KernelError::Shape(format!(
            "a row of {} logits into {} outputs",
            logits.len(),
            out.len()
        )));
    }
    log_softmax_on(crate::KernelKind::detect(), logits, out)
}

/// [`log_softmax`] after its checks, on `kind` (the portable code where this CPU lacks it).
fn log_softmax_on(
    kind: crate::KernelKind,
    logits: &[f32],
    out: &mut [f32],
) -> Result<Distribution, KernelError> {
    match kind {
        #[cfg(target_arch = "x86_64")]
        crate::KernelKind::Avx512Vnni | crate::KernelKind::AvxVnni | crate::KernelKind::Avx2
            if kind.supported() =>
        {
            crate::x86::log_softmax(kind, logits, out)
        }
        _ => log_softmax_row(logits, out),
    }
}

/// [`log_softmax`] after its checks. Inlined into each CPU's entry point so that it
/// vectorizes there.
#[inline(always)]
pub(crate) fn log_softmax_row(
    logits: &[f32],
    out: &mut [f32],
) -> Result<Distribution, KernelError> {
    let mut maxima = [f32::NEG_INFINITY; LANES];
    // `x · 0 == 0` fails exactly for NaN and the infinities.
    let mut finite = true;
    let mut chunks = logits.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (m, &x) in maxima.iter_mut().zip(chunk) {
            *m = m.max(x);
            finite &= x * 0.0 == 0.0;
        }
    }
    for &x in chunks.remainder() {
        maxima[0] = maxima[0].max(x);
        finite &= x * 0.0 == 0.0;
    }
    if !finite {
        return Err(KernelError::Data("a logit is not finite".into()));
    }
    let max = maxima.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut s, mut a, mut b) = ([0f32; LANES], [0f32; LANES], [0f32; LANES]);
    let mut chunks = logits.chunks_exact(LANES);
    for chunk in &mut chunks {
        for l in 0..LANES {
            let u = chunk[l] - max;
            let e = crate::rows::exp(u);
            s[l] += e;
            a[l] += e * u;
            b[l] += e * u * u;
        }
    }
    for (l, &x) in chunks.remainder().iter().enumerate() {
        let u = x - max;
        let e = crate::rows::exp(u);
        s[l] += e;
        a[l] += e * u;
        b[l] += e * u * u;
    }
    let total = |v: &[f32; LANES]| v.iter().map(|&x| f64::from(x)).sum::<f64>();
    let (s, a, b) = (total(&s), total(&a), total(&b));
    let log_sum = s.ln();
    let shift = max + log_sum as f32;
    for (o, &x) in out.iter_mut().zip(logits) {
        *o = x - shift;
    }
    let mean = a / s;
    Ok(Distribution {
        entropy: (log_sum - mean) as f32,
        logprob_variance: (b / s - mean * mean).max(0.0) as f32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook computation in f64.
    fn reference(logits: &[f32]) -> (Vec<f64>, f64, f64) {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
        let lp: Vec<f64> = logits.iter().map(|&l| l as f64 - max - sum.ln()).collect();
        let h: f64 = -lp.iter().map(|&x| x.exp() * x).sum::<f64>();
        let m2: f64 = lp.iter().map(|&x| x.exp() * x * x).sum();
        (lp, h, m2 - h * h)
    }

    #[test]
    fn matches_the_f64_reference() {
        for (n, spread) in [(1, 1.0), (7, 3.0), (16, 0.1), (4099, 8.0), (8192, 30.0)] {
            let logits: Vec<f32> = (0..n)
                .map(|i| ((i * 7919 % 1009) as f32 / 1009.0 - 0.5) * spread)
                .collect();
            let mut out = vec![0f32; n];
            let got = log_softmax(&logits, &mut out).unwrap();
            let (lp, h, var) = reference(&logits);
            for (g, w) in out.iter().zip(&lp) {
                assert!((*g as f64 - w).abs() < 2e-5, "n {n}: {g} vs {w}");
            }
            assert!((got.entropy as f64 - h).abs() < 1e-5 * h.max(1.0), "n {n}");
            assert!(
                (got.logprob_variance as f64 - var).abs() < 1e-4 * var.max(1.0),
                "n {n}: {} vs {var}",
                got.logprob_variance
            );
            // Every kernel this CPU has gives the portable code's bits.
            let mut portable = vec![0f32; n];
            let p = log_softmax_on(crate::KernelKind::Portable, &logits, &mut portable).unwrap();
            for kind in crate::KernelKind::ALL.into_iter().filter(|k| k.supported()) {
                let mut vector = vec![0f32; n];
                let v = log_softmax_on(kind, &logits, &mut vector).unwrap();
                assert_eq!(v, p, "n {n}, {kind:?}");
                assert!(
                    vector
                        .iter()
                        .zip(&portable)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "n {n}, {kind:?}"
                );
            }
        }
    }

    #[test]
    fn a_certain_row_has_no_entropy() {
        let mut logits = vec![-1000.0f32; 100];
        logits[42] = 0.0;
        let mut out = vec![0f32; 100];
        let d = log_softmax(&logits, &mut out).unwrap();
        assert!(d.entropy.abs() < 1e-6 && d.logprob_variance.abs() < 1e-6);
        assert!(out[42].abs() < 1e-6);
    }

    #[test]
    fn bad_rows_are_refused() {
        let mut out = vec![0f32; 3];
        assert!(log_softmax(&[], &mut []).is_err());
        assert!(log_softmax(&[1.0, 2.0], &mut out).is_err());
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            assert!(log_softmax(&[1.0, bad, 0.0], &mut out).is_err());
        }
    }
}
