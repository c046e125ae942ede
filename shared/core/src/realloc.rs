//! Budget shifts between ad channels, from what each returned per dollar.
//! Only ever a proposal: applying one needs a person's approval.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A channel's spend and attributed revenue over the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelReturn {
    pub channel: String,
    pub spend: f64,
    pub revenue: f64,
}

impl ChannelReturn {
    /// Revenue per dollar spent; `None` without spend.
    pub fn roi(&self) -> Option<f64> {
        (self.spend > 0.0).then(|| self.revenue / self.spend)
    }
}

/// Move `amount` USD a month from `from` to `to`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shift {
    pub from: String,
    pub to: String,
    pub amount: f64,
    pub from_roi: f64,
    pub to_roi: f64,
    pub before: BTreeMap<String, f64>,
    pub after: BTreeMap<String, f64>,
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The shift from the channel with the lowest return to the one with the
/// highest, when their gap is at least `min_gap`: `max_shift_percent` of the
/// worst channel's budget, in whole dollars. `None` when nothing should move.
pub fn propose(
    allocation: &BTreeMap<String, f64>,
    returns: &[ChannelReturn],
    min_gap: f64,
    max_shift_percent: f64,
) -> Option<Shift> {
    let mut ranked: Vec<(&ChannelReturn, f64)> = returns
        .iter()
        .filter(|r| allocation.contains_key(&r.channel))
        .filter_map(|r| r.roi().map(|roi| (r, roi)))
        .collect();
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.channel.cmp(&b.0.channel)));
    let (worst, worst_roi) = *ranked.first()?;
    let (best, best_roi) = *ranked.last()?;
    if worst.channel == best.channel || best_roi - worst_roi < min_gap {
        return None;
    }
    let budget = allocation.get(&worst.channel).copied().unwrap_or(0.0);
    let amount = (budget * max_shift_percent / 100.0).floor();
    if amount < 1.0 {
        return None;
    }
    let mut after = allocation.clone();
    *after.entry(worst.channel.clone()).or_default() -= amount;
    *after.entry(best.channel.clone()).or_default() += amount;
    Some(Shift {
        from: worst.channel.clone(),
        to: best.channel.clone(),
        amount,
        from_roi: round2(worst_roi),
        to_roi: round2(best_roi),
        before: allocation.clone(),
        after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc() -> BTreeMap<String, f64> {
        [
            ("google_ads", 3000.0),
            ("meta_ads", 2000.0),
            ("linkedin_ads", 1000.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn ret(channel: &str, spend: f64, revenue: f64) -> ChannelReturn {
        ChannelReturn {
            channel: channel.into(),
            spend,
            revenue,
        }
    }

    #[test]
    fn the_worst_channel_gives_its_share_to_the_best() {
        let returns = [
            ret("google_ads", 2800.0, 11_200.0), // 4.0
            ret("meta_ads", 1900.0, 3_800.0),    // 2.0
            ret("linkedin_ads", 1000.0, 900.0),  // 0.9
        ];
        let s = propose(&alloc(), &returns, 0.5, 20.0).expect("a shift");
        assert_eq!(
            (s.from.as_str(), s.to.as_str()),
            ("linkedin_ads", "google_ads")
        );
        assert_eq!(s.amount, 200.0);
        assert_eq!((s.from_roi, s.to_roi), (0.9, 4.0));
        assert_eq!(s.after["linkedin_ads"], 800.0);
        assert_eq!(s.after["google_ads"], 3200.0);
        assert_eq!(
            s.after.values().sum::<f64>(),
            s.before.values().sum::<f64>()
        );
    }

    #[test]
    fn nothing_moves_when_returns_are_close_or_unknown() {
        let close = [
            ret("google_ads", 1000.0, 2100.0),
            ret("meta_ads", 1000.0, 2000.0),
        ];
        assert_eq!(propose(&alloc(), &close, 0.5, 20.0), None);
        let one = [ret("google_ads", 1000.0, 9000.0), ret("meta_ads", 0.0, 0.0)];
        assert_eq!(propose(&alloc(), &one, 0.5, 20.0), None);
        let unknown = [ret("tiktok", 10.0, 900.0), ret("meta_ads", 1000.0, 100.0)];
        assert_eq!(propose(&alloc(), &unknown, 0.5, 20.0), None);
    }
}
