//! Paired statistics for comparing students scored on the same questions: McNemar's exact test,
//! a seeded paired bootstrap of the accuracy difference, and the summaries over seeds
//! (mean ± sd, a t-interval). Everything takes per-question correctness vectors aligned by
//! question; aligning them is the caller's job.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The 2×2 table of two students on the same questions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairTable {
    pub both_right: usize,
    /// Right for A, wrong for B.
    pub only_a: usize,
    /// Right for B, wrong for A.
    pub only_b: usize,
    pub both_wrong: usize,
}

impl PairTable {
    /// Panics when the vectors differ in length (they must be aligned by question).
    pub fn new(a: &[bool], b: &[bool]) -> PairTable {
        assert_eq!(a.len(), b.len(), "paired vectors must be aligned");
        let mut t = PairTable::default();
        for (&x, &y) in a.iter().zip(b) {
            match (x, y) {
                (true, true) => t.both_right += 1,
                (true, false) => t.only_a += 1,
                (false, true) => t.only_b += 1,
                (false, false) => t.both_wrong += 1,
            }
        }
        t
    }

    pub fn n(&self) -> usize {
        self.both_right + self.only_a + self.only_b + self.both_wrong
    }
}

/// McNemar's exact test: the two-sided binomial test of the discordant pairs against p = ½,
/// `min(1, 2 · P[X ≤ min(b, c)])` with X ~ Binomial(b + c, ½) (statsmodels' `mcnemar(exact=True)`).
/// 1 when there are no discordant pairs.
pub fn mcnemar_exact(only_a: usize, only_b: usize) -> f64 {
    let n = only_a + only_b;
    if n == 0 {
        return 1.0;
    }
    let k = only_a.min(only_b);
    // Σ_{i ≤ k} C(n, i) / 2^n in log space: n can be thousands
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_c = 0.0f64; // ln C(n, 0)
    let mut sum = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            ln_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        sum += (ln_c + ln_half_n).exp();
    }
    (2.0 * sum).min(1.0)
}

/// A 95% interval `[lo, hi]` and the point estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub estimate: f64,
    pub lo: f64,
    pub hi: f64,
}

/// The paired bootstrap of mean-over-seeds accuracy difference B − A: questions are resampled
/// with replacement (one draw of question indices per resample, applied to every seed's pair,
/// since all seeds answered the same questions), and the 2.5th and 97.5th percentiles
/// (linear interpolation, numpy's default) of the resampled differences are the interval.
/// `pairs[s] = (a, b)` are seed s's correctness vectors, all of one length.
pub fn paired_bootstrap(pairs: &[(&[bool], &[bool])], resamples: usize, seed: u64) -> Interval {
    let n = pairs.first().map_or(0, |p| p.0.len());
    assert!(
        pairs.iter().all(|(a, b)| a.len() == n && b.len() == n),
        "paired vectors must be aligned"
    );
    if n == 0 || pairs.is_empty() {
        return Interval {
            estimate: 0.0,
            lo: 0.0,
            hi: 0.0,
        };
    }
    // per question, the difference summed over seeds: b − a ∈ {−1, 0, 1} per seed
    let d: Vec<f64> = (0..n)
        .map(|q| {
            pairs
                .iter()
                .map(|(a, b)| b[q] as i32 as f64 - a[q] as i32 as f64)
                .sum::<f64>()
        })
        .collect();
    let scale = 1.0 / (n as f64 * pairs.len() as f64);
    let estimate = d.iter().sum::<f64>() * scale;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut diffs: Vec<f64> = (0..resamples.max(1))
        .map(|_| (0..n).map(|_| d[rng.random_range(0..n)]).sum::<f64>() * scale)
        .collect();
    diffs.sort_by(|x, y| x.total_cmp(y));
    Interval {
        estimate,
        lo: quantile_sorted(&diffs, 0.025),
        hi: quantile_sorted(&diffs, 0.975),
    }
}

/// The q-quantile of sorted values, interpolating linearly between order statistics (numpy's
/// default, "type 7").
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Mean and sample standard deviation (n − 1); sd is 0 for one value, NaN for none.
pub fn mean_sd(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() == 1 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// The 97.5th percentile of Student's t with `df` degrees of freedom (scipy's `t.ppf(0.975,
/// df)`): tabled to df 30, the Cornish-Fisher expansion beyond (checked against scipy in
/// `tests/stats_reference.rs`).
pub fn t_975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706_204_736,
        4.302_652_730,
        3.182_446_305,
        2.776_445_105,
        2.570_581_836,
        2.446_911_851,
        2.364_624_252,
        2.306_004_135,
        2.262_157_163,
        2.228_138_852,
        2.200_985_160,
        2.178_812_830,
        2.160_368_656,
        2.144_786_688,
        2.131_449_546,
        2.119_905_299,
        2.109_815_578,
        2.100_922_040,
        2.093_024_054,
        2.085_963_447,
        2.079_613_845,
        2.073_873_068,
        2.068_657_610,
        2.063_898_562,
        2.059_538_553,
        2.055_529_439,
        2.051_830_516,
        2.048_407_142,
        2.045_229_642,
        2.042_272_456,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => T[df - 1],
        // the Cornish-Fisher expansion to 1/df³: within 1e-5 of the exact value past df 30
        _ => {
            let z: f64 = 1.959_963_984_540_054;
            let v = df as f64;
            z + (z.powi(3) + z) / (4.0 * v)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * v * v)
                + (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z)
                    / (384.0 * v * v * v)
        }
    }
}

/// The t-interval of the mean of `xs` (e.g. per-seed paired differences): mean ± t·sd/√k.
/// NaN bounds for fewer than two values.
pub fn t_interval(xs: &[f64]) -> Interval {
    let (mean, sd) = mean_sd(xs);
    let half = if xs.len() >= 2 {
        t_975(xs.len() - 1) * sd / (xs.len() as f64).sqrt()
    } else {
        f64::NAN
    };
    Interval {
        estimate: mean,
        lo: mean - half,
        hi: mean + half,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(bits: &str) -> Vec<bool> {
        bits.chars().map(|c| c == '1').collect()
    }

    #[test]
    fn mcnemar_hand_worked() {
        // no discordant pairs: nothing to test
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // all five discordant one way: 2 · (1/2)^5
        assert!((mcnemar_exact(5, 0) - 0.0625).abs() < 1e-15);
        assert!((mcnemar_exact(0, 5) - 0.0625).abs() < 1e-15);
        // b = 1, c = 4: 2 · (1 + 5) / 32
        assert!((mcnemar_exact(1, 4) - 0.375).abs() < 1e-15);
        // b = 10, c = 2: 2 · (1 + 12 + 66) / 4096
        assert!((mcnemar_exact(10, 2) - 0.038_574_218_75).abs() < 1e-12);
        // balanced: capped at 1
        assert_eq!(mcnemar_exact(3, 3), 1.0);
        // one discordant pair
        assert_eq!(mcnemar_exact(1, 0), 1.0);
        // large n stays finite: 2 · P[X ≤ 400], X ~ Bin(1000, ½) (exact: 2.7285e-10)
        let p = mcnemar_exact(400, 600);
        assert!((p / 2.728_464_156e-10 - 1.0).abs() < 1e-9, "{p}");
    }

    #[test]
    fn table_counts_each_cell() {
        let t = PairTable::new(&v("1100"), &v("1010"));
        assert_eq!(
            (t.both_right, t.only_a, t.only_b, t.both_wrong, t.n()),
            (1, 1, 1, 1, 4)
        );
    }

    #[test]
    fn bootstrap_edge_cases_are_exact() {
        // no discordant pairs: every resample has difference 0
        let a = v("1101001");
        let i = paired_bootstrap(&[(&a, &a)], 2000, 1);
        assert_eq!((i.estimate, i.lo, i.hi), (0.0, 0.0, 0.0));
        // all discordant one way: B right wherever A is wrong, and only there
        let (a, b) = (v("0000000000"), v("1111111111"));
        let i = paired_bootstrap(&[(&a, &b)], 2000, 1);
        assert_eq!((i.estimate, i.lo, i.hi), (1.0, 1.0, 1.0));
        // n = 1
        let i = paired_bootstrap(&[(&[false][..], &[true][..])], 100, 1);
        assert_eq!((i.estimate, i.lo, i.hi), (1.0, 1.0, 1.0));
    }

    #[test]
    fn bootstrap_interval_covers_the_normal_approximation() {
        // 200 questions, B right on 30 more than A (40 only-B, 10 only-A): d̄ = 0.15, the
        // paired sd of d is sqrt((50/200) − 0.15²) / sqrt(200) = 0.0337 → ±0.066
        let mut a = vec![false; 200];
        let mut b = vec![false; 200];
        b[..40].fill(true);
        a[40..50].fill(true);
        for q in 50..120 {
            a[q] = true;
            b[q] = true;
        }
        let i = paired_bootstrap(&[(&a, &b)], 10_000, 7);
        assert!((i.estimate - 0.15).abs() < 1e-12);
        assert!((i.lo - (0.15 - 0.0661)).abs() < 0.006, "{i:?}");
        assert!((i.hi - (0.15 + 0.0661)).abs() < 0.006, "{i:?}");
        // the same seed gives the same interval
        assert_eq!(i, paired_bootstrap(&[(&a, &b)], 10_000, 7));
        // two seeds: the estimate is the mean of the seeds' differences
        let a2 = a.clone();
        let i2 = paired_bootstrap(&[(&a, &b), (&a2, &a2)], 10_000, 7);
        assert!((i2.estimate - 0.075).abs() < 1e-12);
    }

    #[test]
    fn quantile_interpolates_like_numpy() {
        let xs = [1.0, 2.0, 3.0, 4.0];
        // numpy.quantile([1, 2, 3, 4], 0.025) = 1.075; 0.975 → 3.925
        assert!((quantile_sorted(&xs, 0.025) - 1.075).abs() < 1e-12);
        assert!((quantile_sorted(&xs, 0.975) - 3.925).abs() < 1e-12);
        assert_eq!(quantile_sorted(&[5.0], 0.3), 5.0);
    }

    #[test]
    fn mean_sd_and_t_interval() {
        let (m, s) = mean_sd(&[0.30, 0.34, 0.32]);
        assert!((m - 0.32).abs() < 1e-12 && (s - 0.02).abs() < 1e-12);
        assert_eq!(mean_sd(&[0.5]), (0.5, 0.0));
        // three seeds: 0.32 ± 4.302653 · 0.02 / √3
        let i = t_interval(&[0.30, 0.34, 0.32]);
        let half = 4.302_652_730 * 0.02 / 3f64.sqrt();
        assert!((i.lo - (0.32 - half)).abs() < 1e-9 && (i.hi - (0.32 + half)).abs() < 1e-9);
        assert!(t_interval(&[0.1]).lo.is_nan());
        assert!((t_975(60) - 2.000_297_8).abs() < 1e-5);
        assert!((t_975(31) - 2.039_513_4).abs() < 1e-5);
    }
}
