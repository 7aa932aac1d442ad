//! Kaplan–Meier survival curves with right-censoring, Greenwood variance,
//! lifelines' confidence bands and median CI, and the two-group log-rank
//! test — written to agree with Python `lifelines` 0.30 to 1e-9 (see
//! `tests/km_reference.rs`, whose data set, reference values and generating
//! script are checked in under `tests/data/`).
//!
//! No crates.io estimator fitted: `survival` 2.x needs Rust 1.94 (we build
//! on 1.89) and brings Python bindings; `solow-duration` 0.7 is a new
//! single-author crate following statsmodels' conventions, not lifelines'
//! confidence bands. Special functions (normal quantile, χ² tail) come from
//! `statrs`.
//!
//! Conventions, all as in lifelines' `KaplanMeierFitter.fit`:
//! * The timeline is 0 and every distinct observed time (events and
//!   censorings), ascending. At a time where both happen, events are
//!   counted first (a copy censored at t was at risk at t).
//! * `S(t) = exp(Σ ln((n_i − d_i)/n_i))` over times ≤ t; Greenwood's sum
//!   `Σ d_i / (n_i (n_i − d_i))`, a term with `n_i = d_i` counted as 0.
//! * Confidence band: the exponential Greenwood ("log-log") interval,
//!   `exp(−exp(ln(−ln S) ∓ z·√V / ln S))`, 1 where undefined (S = 1).
//! * Median (and any quantile q): the first timeline time with `S ≤ q`,
//!   none (∞) if S never gets there. The median's 95 % CI is the same rule
//!   applied to the lower and upper bands — what
//!   `median_survival_times(kmf.confidence_interval_)` returns.
//! * Log-rank: the (unweighted) Mantel–Haenszel statistic
//!   `U = (O₁ − E₁)² / V₁`, hypergeometric variance
//!   `V₁ = Σ n₁ n₂ d (n − d) / (n² (n − 1))`, p from χ²(1).

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

/// One subject: when it left observation, and whether that was the event
/// (removal) or censoring (still up when last seen).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation {
    pub time: f64,
    pub event: bool,
}

/// Why an estimate could not be computed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SurvivalError {
    #[error("no observations")]
    Empty,
    #[error("observation times must be finite and ≥ 0 (got {0})")]
    BadTime(f64),
    #[error("alpha must be in (0, 1) (got {0})")]
    BadAlpha(f64),
}

/// A fitted Kaplan–Meier curve. Every vector is indexed by the timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct KaplanMeier {
    /// 0 and every distinct observed time, ascending.
    pub times: Vec<f64>,
    /// At risk just before each time.
    pub at_risk: Vec<u64>,
    /// Events at each time.
    pub events: Vec<u64>,
    /// Censorings at each time.
    pub censored: Vec<u64>,
    /// S(t).
    pub survival: Vec<f64>,
    /// Greenwood's cumulative sum (the variance of ln S is `S²·V`… lifelines
    /// keeps the sum itself; so do we).
    pub greenwood: Vec<f64>,
    pub ci_lower: Vec<f64>,
    pub ci_upper: Vec<f64>,
    /// Confidence level of the band, e.g. 0.95.
    pub confidence: f64,
}

/// A time, or none when the curve never reaches the level (∞).
pub type MaybeTime = Option<f64>;

/// Median survival time with its confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Median {
    pub median: MaybeTime,
    pub lower: MaybeTime,
    pub upper: MaybeTime,
}

/// Result of a log-rank test between two groups.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogRank {
    pub statistic: f64,
    pub p_value: f64,
    pub observed_a: f64,
    pub expected_a: f64,
    pub observed_b: f64,
    pub expected_b: f64,
    pub variance: f64,
}

fn check(obs: &[Observation]) -> Result<(), SurvivalError> {
    if obs.is_empty() {
        return Err(SurvivalError::Empty);
    }
    if let Some(o) = obs.iter().find(|o| !o.time.is_finite() || o.time < 0.0) {
        return Err(SurvivalError::BadTime(o.time));
    }
    Ok(())
}

/// Sorted, grouped life table: (time, events, censorings) per distinct time,
/// with a leading row at 0.
fn life_table(obs: &[Observation]) -> Vec<(f64, u64, u64)> {
    let mut sorted: Vec<(f64, bool)> = obs.iter().map(|o| (o.time, o.event)).collect();
    sorted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut table: Vec<(f64, u64, u64)> = Vec::with_capacity(sorted.len().min(1 << 20) + 1);
    table.push((0.0, 0, 0));
    for (t, e) in sorted {
        let last = table.len() - 1;
        let row = if table[last].0 == t {
            &mut table[last]
        } else {
            table.push((t, 0, 0));
            let n = table.len() - 1;
            &mut table[n]
        };
        if e {
            row.1 += 1;
        } else {
            row.2 += 1;
        }
    }
    table
}

/// The two-sided z of a `1 − alpha` interval.
fn z_of(alpha: f64) -> Result<f64, SurvivalError> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(SurvivalError::BadAlpha(alpha));
    }
    let normal = Normal::standard();
    Ok(normal.inverse_cdf(1.0 - alpha / 2.0))
}

impl KaplanMeier {
    /// Fit with a 95 % band.
    pub fn fit(obs: &[Observation]) -> Result<KaplanMeier, SurvivalError> {
        KaplanMeier::fit_alpha(obs, 0.05)
    }

    /// Fit with a `1 − alpha` band.
    pub fn fit_alpha(obs: &[Observation], alpha: f64) -> Result<KaplanMeier, SurvivalError> {
        check(obs)?;
        let z = z_of(alpha)?;
        let table = life_table(obs);
        let len = table.len();
        let mut km = KaplanMeier {
            times: Vec::with_capacity(len),
            at_risk: Vec::with_capacity(len),
            events: Vec::with_capacity(len),
            censored: Vec::with_capacity(len),
            survival: Vec::with_capacity(len),
            greenwood: Vec::with_capacity(len),
            ci_lower: Vec::with_capacity(len),
            ci_upper: Vec::with_capacity(len),
            confidence: 1.0 - alpha,
        };
        let mut at_risk = obs.len() as u64;
        let (mut log_s, mut var) = (0.0f64, 0.0f64);
        for (t, d, c) in table {
            let n = at_risk as f64;
            let df = d as f64;
            if d > 0 {
                log_s += (n - df).ln() - n.ln();
                if at_risk > d {
                    var += df / (n * (n - df));
                }
            }
            let s = log_s.exp();
            let (lo, hi) = band(s, var, z);
            km.times.push(t);
            km.at_risk.push(at_risk);
            km.events.push(d);
            km.censored.push(c);
            km.survival.push(s);
            km.greenwood.push(var);
            km.ci_lower.push(lo);
            km.ci_upper.push(hi);
            at_risk -= d + c;
        }
        Ok(km)
    }

    /// Subjects.
    pub fn n(&self) -> u64 {
        self.at_risk.first().copied().unwrap_or(0)
    }

    /// Events in all.
    pub fn total_events(&self) -> u64 {
        self.events.iter().sum()
    }

    /// Censored subjects in all.
    pub fn total_censored(&self) -> u64 {
        self.censored.iter().sum()
    }

    /// S at `t` (right-continuous step function; 1 before the first event).
    pub fn survival_at(&self, t: f64) -> f64 {
        step_at(&self.times, &self.survival, t)
    }

    /// The band at `t`.
    pub fn band_at(&self, t: f64) -> (f64, f64) {
        (
            step_at(&self.times, &self.ci_lower, t),
            step_at(&self.times, &self.ci_upper, t),
        )
    }

    /// First time with S ≤ q (lifelines' `qth_survival_time`).
    pub fn quantile(&self, q: f64) -> MaybeTime {
        first_at_or_below(&self.times, &self.survival, q)
    }

    /// Median and its CI from the band (see the module doc).
    pub fn median(&self) -> Median {
        Median {
            median: self.quantile(0.5),
            lower: first_at_or_below(&self.times, &self.ci_lower, 0.5),
            upper: first_at_or_below(&self.times, &self.ci_upper, 0.5),
        }
    }
}

/// lifelines' exponential Greenwood band for one point.
fn band(s: f64, var: f64, z: f64) -> (f64, f64) {
    let v = s.ln();
    let lo = (-((-v).ln() - z * var.sqrt() / v).exp()).exp();
    let hi = (-((-v).ln() + z * var.sqrt() / v).exp()).exp();
    (
        if lo.is_nan() { 1.0 } else { lo },
        if hi.is_nan() { 1.0 } else { hi },
    )
}

fn step_at(times: &[f64], values: &[f64], t: f64) -> f64 {
    // Index of the last time ≤ t.
    let i = times.partition_point(|x| *x <= t);
    if i == 0 {
        1.0
    } else {
        values[i - 1]
    }
}

fn first_at_or_below(times: &[f64], values: &[f64], q: f64) -> MaybeTime {
    match values.last() {
        Some(last) if *last <= q => {}
        _ => return None,
    }
    values.iter().position(|v| *v <= q).map(|i| times[i])
}

/// Two-group log-rank test (see the module doc).
pub fn logrank(a: &[Observation], b: &[Observation]) -> Result<LogRank, SurvivalError> {
    check(a)?;
    check(b)?;
    let mut all: Vec<(f64, bool, bool)> = a
        .iter()
        .map(|o| (o.time, o.event, true))
        .chain(b.iter().map(|o| (o.time, o.event, false)))
        .collect();
    all.sort_unstable_by(|x, y| x.0.total_cmp(&y.0));
    let (mut n_a, mut n_b) = (a.len() as f64, b.len() as f64);
    let (mut obs_a, mut exp_a, mut obs_b, mut exp_b, mut var) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut i = 0;
    while i < all.len() {
        let t = all[i].0;
        let (mut d_a, mut d_b, mut r_a, mut r_b) = (0.0, 0.0, 0.0, 0.0);
        while i < all.len() && all[i].0 == t {
            let (_, event, in_a) = all[i];
            match (in_a, event) {
                (true, true) => d_a += 1.0,
                (false, true) => d_b += 1.0,
                _ => {}
            }
            if in_a {
                r_a += 1.0;
            } else {
                r_b += 1.0;
            }
            i += 1;
        }
        let n = n_a + n_b;
        let d = d_a + d_b;
        if d > 0.0 {
            obs_a += d_a;
            obs_b += d_b;
            exp_a += n_a * d / n;
            exp_b += n_b * d / n;
            let factor = if n > 1.0 { (n - d) / (n - 1.0) } else { 1.0 };
            var += factor * d / (n * n) * n_a * n_b;
        }
        n_a -= r_a;
        n_b -= r_b;
    }
    let z = obs_a - exp_a;
    let statistic = if var > 0.0 { z * z / var } else { 0.0 };
    let p_value = chi2_sf(statistic, 1.0);
    Ok(LogRank {
        statistic,
        p_value,
        observed_a: obs_a,
        expected_a: exp_a,
        observed_b: obs_b,
        expected_b: exp_b,
        variance: var,
    })
}

/// Upper tail of χ²(df) at x.
fn chi2_sf(x: f64, df: f64) -> f64 {
    match ChiSquared::new(df) {
        Ok(d) if x > 0.0 => d.sf(x),
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(pairs: &[(f64, bool)]) -> Vec<Observation> {
        pairs
            .iter()
            .map(|&(time, event)| Observation { time, event })
            .collect()
    }

    #[test]
    fn textbook_steps() {
        // 6 subjects: events at 1, 3, 3; censored at 2, 4, 5.
        let km = KaplanMeier::fit(&obs(&[
            (1.0, true),
            (2.0, false),
            (3.0, true),
            (3.0, true),
            (4.0, false),
            (5.0, false),
        ]))
        .unwrap();
        assert_eq!(km.times, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(km.at_risk, vec![6, 6, 5, 4, 2, 1]);
        let s3 = 5.0 / 6.0 * (2.0 / 4.0);
        assert!((km.survival_at(3.5) - s3).abs() < 1e-15);
        assert_eq!(km.survival_at(0.5), 1.0);
        assert_eq!(km.median().median, Some(3.0));
        assert_eq!(km.total_events(), 3);
        assert_eq!(km.total_censored(), 3);
    }

    #[test]
    fn never_reaching_half_has_no_median() {
        let km = KaplanMeier::fit(&obs(&[(1.0, true), (2.0, false), (3.0, false)])).unwrap();
        assert_eq!(km.median().median, None);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(KaplanMeier::fit(&[]), Err(SurvivalError::Empty));
        assert!(KaplanMeier::fit(&obs(&[(f64::NAN, true)])).is_err());
        assert!(KaplanMeier::fit(&obs(&[(-1.0, true)])).is_err());
        assert!(KaplanMeier::fit_alpha(&obs(&[(1.0, true)]), 1.5).is_err());
    }

    #[test]
    fn logrank_of_identical_groups_is_zero() {
        let a = obs(&[(1.0, true), (2.0, true), (3.0, false)]);
        let r = logrank(&a, &a).unwrap();
        assert!(r.statistic.abs() < 1e-12);
        assert!((r.p_value - 1.0).abs() < 1e-12);
    }
}
