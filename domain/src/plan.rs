//! Subscription plans as data: what each costs, monthly or yearly, what it allows per usage
//! period (a calendar month, UTC) and which features it has.

use serde::{Deserialize, Serialize};

use crate::values::Money;

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

/// How often a subscription is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cycle {
    Monthly,
    Yearly,
}

crate::labels::labels!(Cycle {
    Monthly => "monthly",
    Yearly => "yearly",
});

/// What usage is counted against a plan's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Bookings made in the period, from any channel.
    Bookings,
    /// WhatsApp messages in and out in the period.
    Messages,
}

crate::labels::labels!(Metric {
    Bookings => "bookings",
    Messages => "messages",
});

/// Limits per usage period (a calendar month). `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PlanLimits {
    pub bookings: Option<u32>,
    pub messages: Option<u32>,
    pub staff_seats: Option<u32>,
}

impl PlanLimits {
    pub fn of(self, metric: Metric) -> Option<u32> {
        match metric {
            Metric::Bookings => self.bookings,
            Metric::Messages => self.messages,
        }
    }
}

/// What a plan includes beyond its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// The WhatsApp booking bot.
    WhatsappBot,
    /// The owners' dashboard.
    Dashboard,
    /// API keys for the business's own systems.
    Api,
    /// Reports of how the business is doing.
    Analytics,
    /// Signed webhooks and the event stream for the business's own systems.
    Integrations,
    /// Answers from a person within a working day.
    PrioritySupport,
}

/// A plan as the product sells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSpec {
    pub plan: Plan,
    pub name: &'static str,
    pub monthly: Money,
    /// A year paid at once: two months free.
    pub yearly: Money,
    pub limits: PlanLimits,
    /// What each WhatsApp message over the month's limit costs: messages are never cut off,
    /// the excess is billed with the next invoice.
    pub message_overage: Money,
    pub features: &'static [Feature],
}

impl PlanSpec {
    pub fn price(&self, cycle: Cycle) -> Money {
        match cycle {
            Cycle::Monthly => self.monthly,
            Cycle::Yearly => self.yearly,
        }
    }

    /// What the messages of a month over the limit cost.
    pub fn overage(&self, messages: u32) -> Money {
        let over = self
            .limits
            .messages
            .map_or(0, |limit| messages.saturating_sub(limit));
        let minor = self.message_overage.minor() * i64::from(over);
        Money::parse(minor, self.message_overage.currency().as_str()).expect("a valid amount")
    }
}

/// Every plan on sale, cheapest first.
pub fn catalogue() -> Vec<PlanSpec> {
    Plan::ALL.iter().map(|p| p.spec()).collect()
}

impl Plan {
    /// What the plan costs, allows and includes.
    pub fn spec(self) -> PlanSpec {
        use Feature as F;
        let euros = |major: i64| Money::parse(major * 100, "EUR").expect("a valid price");
        let cents = |minor: i64| Money::parse(minor, "EUR").expect("a valid price");
        match self {
            Plan::Starter => PlanSpec {
                plan: self,
                name: "Starter",
                monthly: euros(29),
                yearly: euros(290),
                limits: self.limits(),
                message_overage: cents(3),
                features: &[F::WhatsappBot, F::Dashboard],
            },
            Plan::Growth => PlanSpec {
                plan: self,
                name: "Growth",
                monthly: euros(79),
                yearly: euros(790),
                limits: self.limits(),
                message_overage: cents(2),
                features: &[F::WhatsappBot, F::Dashboard, F::Api, F::Analytics],
            },
            Plan::Pro => PlanSpec {
                plan: self,
                name: "Pro",
                monthly: euros(199),
                yearly: euros(1990),
                limits: self.limits(),
                message_overage: cents(1),
                features: &[
                    F::WhatsappBot,
                    F::Dashboard,
                    F::Api,
                    F::Analytics,
                    F::Integrations,
                    F::PrioritySupport,
                ],
            },
        }
    }

    /// Plans in order of what they allow: a change to a higher one is an upgrade.
    pub fn rank(self) -> u8 {
        match self {
            Plan::Starter => 0,
            Plan::Growth => 1,
            Plan::Pro => 2,
        }
    }

    pub fn limits(self) -> PlanLimits {
        match self {
            Plan::Starter => PlanLimits {
                bookings: Some(100),
                messages: Some(1_000),
                staff_seats: Some(3),
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
    fn the_catalogue_is_in_order_and_a_year_costs_ten_months() {
        let plans = catalogue();
        assert_eq!(plans.iter().map(|p| p.plan).collect::<Vec<_>>(), Plan::ALL);
        for pair in plans.windows(2) {
            assert!(pair[0].monthly.minor() < pair[1].monthly.minor());
            assert!(pair[0].plan.rank() < pair[1].plan.rank());
        }
        for p in &plans {
            assert_eq!(p.yearly.minor(), p.monthly.minor() * 10, "{}", p.name);
            assert_eq!(p.limits, p.plan.limits());
        }
        let starter = Plan::Starter.spec();
        assert_eq!(starter.overage(1_000).minor(), 0);
        assert_eq!(starter.overage(1_010).minor(), 30);
    }

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
