//! User-pool simulation: which user's session shows which item, and when.
//!
//! 1. [`draw_users`]: `n` users, platforms apportioned to the platform
//!    distribution (exact shares; a platform with items and a positive weight
//!    gets at least one user), activity levels drawn from the activity
//!    distribution, order shuffled.
//! 2. [`plan_platform`]: the platform's items, in chronological order, are
//!    cut into sessions of `items_per_session`. Users are visited round-robin;
//!    a visit is skipped with probability `1 − a / max_activity` (rejection
//!    sampling), otherwise the user gets the next session. Each item lands in
//!    exactly one session.
//! 3. Timestamps: the platform's sessions form a Poisson process whose rate is
//!    `Σ a × baseline` sessions per day (so a user of activity `a` averages
//!    `a × baseline` sessions per day), laid out backwards from `now` so the
//!    newest session is one expected gap before `now`. Items of a session get
//!    evenly spaced times between the previous session and their own, which
//!    keeps the whole feed in chronological order.

use super::distribution::{apportion, ActivityDistribution};
use crate::models::Platform;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// One simulated user.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolUser {
    /// `session_user_id` in the database.
    pub user_id: String,
    /// The hash a ranking request would carry as `user_name_hash`.
    pub user_name_hash: String,
    /// The user's only platform.
    pub platform: Platform,
    /// Relative sessions per day.
    pub activity: f64,
    /// Sessions the user got.
    pub sessions: usize,
}

/// One row to write: indexes into the platform's items and the user list.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlannedRow {
    pub(crate) item: usize,
    pub(crate) user: usize,
    pub(crate) session_ts: i64,
    pub(crate) created_at: i64,
}

fn sha_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Draws `n` users; `platform_weights` holds (platform, weight) for the
/// platforms that may get users.
pub(crate) fn draw_users(
    rng: &mut ChaCha8Rng,
    n: usize,
    platform_weights: &[(Platform, f64)],
    activity: &ActivityDistribution,
    salt: &str,
) -> Vec<PoolUser> {
    let weights: Vec<f64> = platform_weights.iter().map(|p| p.1).collect();
    let mut parts = apportion(n, &weights);
    // Every platform with a positive weight gets a user when n allows it.
    for i in 0..parts.len() {
        if parts[i] == 0 && weights[i] > 0.0 {
            if let Some(j) = (0..parts.len())
                .filter(|&j| parts[j] > 1)
                .max_by_key(|&j| parts[j])
            {
                parts[j] -= 1;
                parts[i] += 1;
            }
        }
    }
    let mut platforms: Vec<Platform> = Vec::with_capacity(n);
    for (k, &count) in parts.iter().enumerate() {
        platforms.resize(platforms.len() + count, platform_weights[k].0);
    }
    platforms.shuffle(rng);
    platforms
        .into_iter()
        .enumerate()
        .map(|(i, platform)| {
            let tag = format!("user-{i}");
            PoolUser {
                user_id: sha_hex(&[salt, &tag]),
                user_name_hash: sha_hex(&[salt, "name:", &tag]),
                platform,
                activity: activity.sample(rng),
                sessions: 0,
            }
        })
        .collect()
}

/// The session shape shared by all platforms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) items_per_session: usize,
    pub(crate) baseline_per_day: f64,
    pub(crate) max_activity: f64,
    /// Unix seconds.
    pub(crate) now: i64,
}

/// Plans the sessions of one platform whose `n_items` items are given in
/// chronological order; `members` holds the indexes of its users.
pub(crate) fn plan_platform(
    rng: &mut ChaCha8Rng,
    users: &mut [PoolUser],
    members: &[usize],
    n_items: usize,
    shape: Shape,
) -> Vec<PlannedRow> {
    let Shape {
        items_per_session,
        baseline_per_day,
        max_activity,
        now,
    } = shape;
    if members.is_empty() || n_items == 0 {
        return Vec::new();
    }
    // 1. Who gets each session (round-robin with rejection).
    let n_sessions = n_items.div_ceil(items_per_session);
    let mut owners = Vec::with_capacity(n_sessions);
    let mut cursor = 0;
    while owners.len() < n_sessions {
        let u = members[cursor % members.len()];
        cursor += 1;
        let accept = users[u].activity / max_activity;
        if accept >= 1.0 || rng.random::<f64>() < accept {
            owners.push(u);
            users[u].sessions += 1;
        }
    }
    // 2. When: Poisson arrivals at Σ a × baseline per day, ending near `now`.
    let rate_per_day: f64 =
        members.iter().map(|&u| users[u].activity).sum::<f64>() * baseline_per_day;
    let mean_gap = 86_400.0 / rate_per_day.max(1e-9);
    let mut times = vec![0.0f64; n_sessions + 1];
    let mut t = now as f64;
    for slot in times.iter_mut().rev() {
        t -= -mean_gap * (1.0 - rng.random::<f64>()).ln();
        *slot = t;
    }
    // times[0] is the start of the feed; session s happens at times[s + 1].
    // 3. Items evenly spaced between the previous session and their own.
    let mut rows = Vec::with_capacity(n_items);
    for (s, &user) in owners.iter().enumerate() {
        let start = s * items_per_session;
        let end = (start + items_per_session).min(n_items);
        let (prev, at) = (times[s], times[s + 1]);
        let k = end - start;
        let step = (at - prev) / (k + 1) as f64;
        for (j, item) in (start..end).enumerate() {
            rows.push(PlannedRow {
                item,
                user,
                session_ts: at.floor() as i64,
                created_at: (at - (k - j) as f64 * step).floor() as i64,
            });
        }
    }
    rows
}
