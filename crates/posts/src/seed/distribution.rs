//! The two distributions of `post-history seed`, parsed from their flag syntax.
//!
//! 1. [`ActivityDistribution`]: `"0.2:20,1:65,5:15"`, activity level (relative
//!    sessions per day) → relative share of users.
//! 2. [`PlatformDistribution`]: `auto`, or `"facebook:11,reddit:7.4,twitter:1.25"`.
//!
//! Weights are normalized, so any non-negative numbers work; an entry that is
//! not `key:number`, a negative or non-finite number, a repeated key, or all
//! weights zero is an error naming the flag and the entry.

use crate::models::Platform;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::fmt;
use std::str::FromStr;

/// A distribution flag that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid --{flag} `{value}`: {reason}")]
pub struct DistributionError {
    flag: &'static str,
    value: String,
    reason: String,
}

impl DistributionError {
    fn new(flag: &'static str, value: &str, reason: impl fmt::Display) -> Self {
        Self {
            flag,
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Splits `k:v,k:v`, checks each key with `key` (first, so `a:b` reports `a`)
/// and each weight (≥ 0, finite), and that not all weights are 0.
fn pairs<K>(
    flag: &'static str,
    s: &str,
    key: impl Fn(&str) -> Result<K, String>,
) -> Result<Vec<(K, f64)>, DistributionError> {
    let mut out = Vec::new();
    for entry in s.split(',').map(str::trim) {
        if entry.is_empty() {
            return Err(DistributionError::new(
                flag,
                s,
                "empty entry (expected key:weight, comma-separated)",
            ));
        }
        let Some((k, v)) = entry.split_once(':') else {
            return Err(DistributionError::new(
                flag,
                s,
                format_args!("entry `{entry}` is not key:weight"),
            ));
        };
        let k = key(k.trim()).map_err(|why| DistributionError::new(flag, s, why))?;
        let w: f64 = v.trim().parse().map_err(|_| {
            DistributionError::new(
                flag,
                s,
                format_args!("weight `{}` of entry `{entry}` is not a number", v.trim()),
            )
        })?;
        if !w.is_finite() || w < 0.0 {
            return Err(DistributionError::new(
                flag,
                s,
                format_args!("weight of entry `{entry}` must be a non-negative number"),
            ));
        }
        out.push((k, w));
    }
    if out.iter().all(|(_, w)| *w == 0.0) {
        return Err(DistributionError::new(flag, s, "all weights are zero"));
    }
    Ok(out)
}

/// Activity levels and the share of users at each (normalized).
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityDistribution {
    levels: Vec<(f64, f64)>,
}

impl ActivityDistribution {
    /// `(level, probability)` pairs, probabilities summing to 1.
    pub fn levels(&self) -> &[(f64, f64)] {
        &self.levels
    }

    /// The highest level with a non-zero share.
    pub fn max_level(&self) -> f64 {
        self.levels
            .iter()
            .filter(|l| l.1 > 0.0)
            .map(|l| l.0)
            .fold(0.0, f64::max)
    }

    /// Draws a level.
    pub(crate) fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        let mut x: f64 = rng.random();
        for &(level, p) in &self.levels {
            if x < p {
                return level;
            }
            x -= p;
        }
        self.levels
            .iter()
            .rev()
            .find(|l| l.1 > 0.0)
            .map_or(1.0, |l| l.0)
    }
}

impl Default for ActivityDistribution {
    fn default() -> Self {
        Self {
            levels: vec![(1.0, 1.0)],
        }
    }
}

impl FromStr for ActivityDistribution {
    type Err = DistributionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const FLAG: &str = "activity-distribution";
        let mut levels: Vec<(f64, f64)> = Vec::new();
        let parse_level = |k: &str| -> Result<f64, String> {
            let level: f64 = k
                .parse()
                .map_err(|_| format!("activity level `{k}` is not a number"))?;
            if !level.is_finite() || level <= 0.0 {
                return Err(format!("activity level `{k}` must be a positive number"));
            }
            Ok(level)
        };
        for (level, w) in pairs(FLAG, s, parse_level)? {
            if levels.iter().any(|l| l.0 == level) {
                return Err(DistributionError::new(
                    FLAG,
                    s,
                    format_args!("activity level `{level}` appears twice"),
                ));
            }
            levels.push((level, w));
        }
        let total: f64 = levels.iter().map(|l| l.1).sum();
        for l in &mut levels {
            l.1 /= total;
        }
        Ok(Self { levels })
    }
}

/// How users are split between platforms.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum PlatformDistribution {
    /// In proportion to the number of items of each platform.
    #[default]
    Auto,
    /// Explicit weights (normalized); a platform left out gets no users.
    Weights(Vec<(Platform, f64)>),
}

impl PlatformDistribution {
    /// The weight of `p` (unnormalized), `None` under `Auto`.
    pub fn weight(&self, p: Platform) -> Option<f64> {
        match self {
            Self::Auto => None,
            Self::Weights(w) => Some(w.iter().find(|x| x.0 == p).map_or(0.0, |x| x.1)),
        }
    }
}

impl FromStr for PlatformDistribution {
    type Err = DistributionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const FLAG: &str = "platform-distribution";
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(Self::Auto);
        }
        let mut out: Vec<(Platform, f64)> = Vec::new();
        let parse_platform = |k: &str| k.parse::<Platform>().map_err(|e| e.to_string());
        for (p, w) in pairs(FLAG, s, parse_platform)? {
            if out.iter().any(|x| x.0 == p) {
                return Err(DistributionError::new(
                    FLAG,
                    s,
                    format_args!("platform `{p}` appears twice"),
                ));
            }
            out.push((p, w));
        }
        Ok(Self::Weights(out))
    }
}

/// Splits `n` into integer parts proportional to `weights` (largest remainder;
/// ties go to the earlier entry).
pub(crate) fn apportion(n: usize, weights: &[f64]) -> Vec<usize> {
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return vec![0; weights.len()];
    }
    let quotas: Vec<f64> = weights.iter().map(|w| n as f64 * w / total).collect();
    let mut parts: Vec<usize> = quotas.iter().map(|q| q.floor() as usize).collect();
    let mut left = n - parts.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        (quotas[b] - quotas[b].floor())
            .total_cmp(&(quotas[a] - quotas[a].floor()))
            .then(a.cmp(&b))
    });
    for i in order {
        if left == 0 {
            break;
        }
        if weights[i] > 0.0 {
            parts[i] += 1;
            left -= 1;
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalizes() -> Result<(), DistributionError> {
        let a: ActivityDistribution = "0.2:20,1:65,5:15".parse()?;
        assert_eq!(a.levels().len(), 3);
        assert!((a.levels()[1].1 - 0.65).abs() < 1e-12);
        assert_eq!(a.max_level(), 5.0);
        assert_eq!(
            "1:1".parse::<ActivityDistribution>()?,
            ActivityDistribution::default()
        );
        let p: PlatformDistribution = "facebook:11, reddit:7.4,twitter:1.25".parse()?;
        assert_eq!(p.weight(Platform::Reddit), Some(7.4));
        assert_eq!(
            "AUTO".parse::<PlatformDistribution>()?,
            PlatformDistribution::Auto
        );
        Ok(())
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |s: &str| {
            s.parse::<ActivityDistribution>()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(
            err("a:b").contains("activity level `a` is not a number"),
            "{}",
            err("a:b")
        );
        assert!(err("1:b").contains("weight `b`"));
        assert!(err("1:-3").contains("non-negative"));
        assert!(err("1:0,2:0").contains("all weights are zero"));
        assert!(err("0:5").contains("positive"));
        assert!(err("1:1,1:2").contains("twice"));
        assert!(err("1").contains("not key:weight"));
        assert!(err("1:1,").contains("empty entry"));
        let perr = |s: &str| {
            s.parse::<PlatformDistribution>()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(perr("myspace:1").contains("unknown platform `myspace`"));
        assert!(perr("reddit:1,reddit:2").contains("twice"));
        assert!(perr("reddit:nan").contains("non-negative"));
        assert!(perr("reddit:1").is_empty());
    }

    #[test]
    fn apportion_is_exact() {
        assert_eq!(apportion(500, &[11.0, 7.4, 1.25]), vec![280, 188, 32]);
        assert_eq!(apportion(10, &[1.0, 0.0, 1.0]), vec![5, 0, 5]);
        assert_eq!(apportion(3, &[1.0, 1.0, 1.0]).iter().sum::<usize>(), 3);
    }
}
