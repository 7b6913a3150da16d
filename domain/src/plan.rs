//! Subscription plans and what each allows per billing period.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Starter,
    Growth,
    Pro,
}

crate::labels::labels!(Plan {
    Starter => "starter",
    Growth => "growth",
    Pro => "pro",
});

/// Limits per billing period. `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    pub bookings: Option<u32>,
    pub messages: Option<u32>,
    pub staff_seats: Option<u32>,
}

impl Plan {
    pub fn limits(self) -> PlanLimits {
        match self {
            Plan::Starter => PlanLimits {
                bookings: Some(100),
                messages: Some(1_000),
                staff_seats: Some(2),
            },
            Plan::Growth => PlanLimits {
                bookings: Some(1_000),
                messages: Some(10_000),
                staff_seats: Some(10),
            },
            Plan::Pro => PlanLimits {
                bookings: None,
                messages: Some(100_000),
                staff_seats: None,
            },
        }
    }
}

/// Where usage stands against a limit: soft limits warn (80 %), hard limits block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitStatus {
    Within,
    NearLimit,
    Reached,
}

pub fn limit_status(used: u32, limit: Option<u32>) -> LimitStatus {
    match limit {
        None => LimitStatus::Within,
        Some(limit) if used >= limit => LimitStatus::Reached,
        Some(limit) if u64::from(used) * 5 >= u64::from(limit) * 4 => LimitStatus::NearLimit,
        Some(_) => LimitStatus::Within,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_warn_at_eighty_percent_and_block_at_the_limit() {
        let bookings = Plan::Starter.limits().bookings;
        assert_eq!(limit_status(79, bookings), LimitStatus::Within);
        assert_eq!(limit_status(80, bookings), LimitStatus::NearLimit);
        assert_eq!(limit_status(100, bookings), LimitStatus::Reached);
        assert_eq!(
            limit_status(u32::MAX, Plan::Pro.limits().bookings),
            LimitStatus::Within
        );
    }
}
