//! Analytics (owners and admins): how the business is doing over a range, from the analytics
//! read side: the headline numbers, bookings per week (or day, or month) as a bar chart, the
//! busiest hours as a weekday-by-hour grid, and the split by service and by staff member; each
//! chart has its numbers as a table too.
//!
//! The charts are SVG drawn on the server, with no script: they print, they need nothing
//! vendored, and the CSP stays as strict as every other page (the issue suggested a vendored
//! chart library; a bar chart and a grid do not need one).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{Duration, Utc};
use query_api::analytics::{BusiestHours, Overview, Series};
use serde::Deserialize;

use crate::AppState;
use crate::pages::{Member, failed, money, render};

/// The chart's drawing box, in SVG units (it scales to the page's width).
const CHART_W: i64 = 600;
const CHART_H: i64 = 160;

pub struct Bar {
    pub label: String,
    pub value: i64,
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
}

pub struct Headline {
    pub what: &'static str,
    pub value: String,
    pub detail: String,
}

pub struct Split {
    pub name: String,
    pub appointments: i64,
    pub completed: i64,
    pub cancelled: i64,
    pub no_show: i64,
    pub hours: String,
}

/// A row of the busiest-hours grid: the weekday and, per hour shown, the count and its shade
/// (0 to 4).
pub struct HourRow {
    pub day: &'static str,
    pub cells: Vec<(i64, u8)>,
}

#[derive(Template)]
#[template(path = "analytics.html")]
pub struct AnalyticsPage {
    pub business: String,
    pub csrf: String,
    pub range: String,
    pub ranges: Vec<(&'static str, &'static str, bool)>,
    pub from: String,
    pub to: String,
    pub headlines: Vec<Headline>,
    pub interval: String,
    pub bars: Vec<Bar>,
    pub chart_w: i64,
    pub chart_h: i64,
    pub most: i64,
    pub hours: Vec<i32>,
    pub grid: Vec<HourRow>,
    /// ("Service", its rows), ("Staff", its rows).
    pub splits: Vec<(&'static str, Vec<Split>)>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AnalyticsQuery {
    #[serde(default)]
    pub range: Option<String>,
}

/// The ranges offered: key, label, days back, the series' interval.
const RANGES: [(&str, &str, i64, &str); 3] = [
    ("30d", "Last 30 days", 30, "day"),
    ("12w", "Last 12 weeks", 84, "week"),
    ("12m", "Last 12 months", 365, "month"),
];

/// A wait in milliseconds as a person reads it: "1.4 s", "3 min", "2 h 5 min".
fn wait(ms: f64) -> String {
    let seconds = ms / 1000.0;
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if seconds < 3600.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        let minutes = (seconds / 60.0).round() as i64;
        format!("{} h {} min", minutes / 60, minutes % 60)
    }
}

fn percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

fn split(b: &query_api::analytics::Breakdown) -> Split {
    Split {
        name: b.name.clone(),
        appointments: b.appointments,
        completed: b.completed,
        cancelled: b.cancelled,
        no_show: b.no_show,
        hours: format!("{:.1}", b.booked_minutes as f64 / 60.0),
    }
}

/// `GET /analytics?range=30d|12w|12m`.
pub async fn analytics(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<AnalyticsQuery>,
) -> Result<Response, Response> {
    let mut m = Member::of(&state, &headers).await?;
    let key = query.range.unwrap_or_else(|| "12w".into());
    let (key, _, days, interval) = RANGES
        .iter()
        .copied()
        .find(|r| r.0 == key)
        .unwrap_or(RANGES[1]);
    let today = Utc::now().with_timezone(&m.tz).date_naive();
    let from = today - Duration::days(days - 1);
    let span = format!("from={from}&to={today}");
    let overview: Overview = m
        .read(&state, &format!("/v1/analytics/overview?{span}"))
        .await
        .map_err(failed)?;
    let series: Series = m
        .read(
            &state,
            &format!("/v1/analytics/series?{span}&interval={interval}"),
        )
        .await
        .map_err(failed)?;
    let busiest: BusiestHours = m
        .read(&state, &format!("/v1/analytics/busiest-hours?{span}"))
        .await
        .map_err(failed)?;

    let o = &overview;
    let revenue = o
        .revenue
        .iter()
        .map(|r| money(r.realised_minor, &r.currency))
        .collect::<Vec<_>>()
        .join(" + ");
    let expected = o
        .revenue
        .iter()
        .map(|r| money(r.expected_minor, &r.currency))
        .collect::<Vec<_>>()
        .join(" + ");
    let headlines = vec![
        Headline {
            what: "Bookings made",
            value: o.bookings_made.total.to_string(),
            detail: format!(
                "{} on WhatsApp, {} by the team, {} by API",
                o.bookings_made.whatsapp, o.bookings_made.dashboard, o.bookings_made.api
            ),
        },
        Headline {
            what: "Appointments",
            value: o.appointments.total.to_string(),
            detail: format!(
                "{} came; no-shows {}, cancelled {}",
                o.appointments.completed,
                percent(o.appointments.no_show_rate),
                percent(o.appointments.cancellation_rate)
            ),
        },
        Headline {
            what: "Revenue",
            value: if revenue.is_empty() {
                "0".into()
            } else {
                revenue
            },
            detail: if expected.is_empty() {
                "nothing booked".into()
            } else {
                format!("of {expected} booked")
            },
        },
        Headline {
            what: "Time booked",
            value: o.utilisation.share.map_or_else(|| "—".into(), percent),
            detail: format!(
                "{:.0} of {:.0} open hours",
                o.utilisation.booked_minutes as f64 / 60.0,
                o.utilisation.open_minutes as f64 / 60.0
            ),
        },
        Headline {
            what: "Customers",
            value: o.customers.total.to_string(),
            detail: format!("{} came back", o.customers.returning),
        },
        Headline {
            what: "On WhatsApp",
            value: format!(
                "{} → {} → {} → {}",
                o.funnel.conversations,
                o.funnel.reached_time_choice,
                o.funnel.booked,
                o.funnel.attended
            ),
            detail: format!(
                "conversations → chose a time → booked → came; the bot finished {}",
                percent(o.bot.finished_by_bot_share)
            ),
        },
        Headline {
            what: "First reply",
            value: o.bot.first_reply_p50_ms.map_or_else(|| "—".into(), wait),
            detail: match (o.bot.waited_for_a_person, o.bot.human_first_reply_p50_ms) {
                (0, _) => "typical; nobody asked for a person".into(),
                (n, Some(ms)) => format!(
                    "typical; {n} asked for a person, who answered in {} (9 in 10 within {})",
                    wait(ms),
                    o.bot
                        .human_first_reply_p90_ms
                        .map_or_else(|| "—".into(), wait)
                ),
                (n, None) => format!("typical; {n} asked for a person, not answered yet"),
            },
        },
        Headline {
            what: "Messages",
            value: (o.messages.inbound + o.messages.outbound).to_string(),
            detail: format!(
                "{} in, {} out; {}",
                o.messages.inbound,
                o.messages.outbound,
                o.messages.monthly_limit.map_or_else(
                    || "your plan has no monthly limit".into(),
                    |n| format!("your plan includes {n} a month")
                )
            ),
        },
    ];

    // Bookings made per period, as bars.
    let most = series
        .points
        .iter()
        .map(|p| p.bookings_made)
        .max()
        .unwrap_or(0)
        .max(1);
    let n = series.points.len().max(1) as i64;
    let slot = CHART_W / n;
    let bars = series
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let height = p.bookings_made * (CHART_H - 10) / most;
            Bar {
                label: match interval {
                    "month" => p.start.format("%b %Y").to_string(),
                    _ => p.start.format("%-d %b").to_string(),
                },
                value: p.bookings_made,
                x: i as i64 * slot + slot / 8,
                y: CHART_H - height,
                width: (slot * 3 / 4).max(1),
                height,
            }
        })
        .collect();

    // Weekday by hour, over the hours anything happened in.
    let (first, last) = busiest
        .cells
        .iter()
        .fold((24, -1), |(lo, hi), c| (lo.min(c.hour), hi.max(c.hour)));
    let hours: Vec<i32> = if last < first {
        vec![]
    } else {
        (first..=last).collect()
    };
    let peak = busiest
        .cells
        .iter()
        .map(|c| c.appointments)
        .max()
        .unwrap_or(1)
        .max(1);
    let grid = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        .iter()
        .enumerate()
        .map(|(i, day)| HourRow {
            day,
            cells: hours
                .iter()
                .map(|h| {
                    let count = busiest
                        .cells
                        .iter()
                        .find(|c| c.weekday == i as i32 + 1 && c.hour == *h)
                        .map_or(0, |c| c.appointments);
                    let shade = if count == 0 {
                        0
                    } else {
                        1 + (count * 3 / peak).min(3) as u8
                    };
                    (count, shade)
                })
                .collect(),
        })
        .collect();

    Ok(render(
        &AnalyticsPage {
            business: m.tenant.business_name.clone(),
            csrf: m.session.csrf.clone(),
            range: key.to_owned(),
            ranges: RANGES
                .iter()
                .map(|(k, label, _, _)| (*k, *label, *k == key))
                .collect(),
            from: from.format("%-d %B %Y").to_string(),
            to: today.format("%-d %B %Y").to_string(),
            headlines,
            interval: interval.to_owned(),
            bars,
            chart_w: CHART_W,
            chart_h: CHART_H,
            most,
            hours,
            grid,
            splits: vec![
                ("Service", o.by_service.iter().map(split).collect()),
                ("Staff", o.by_resource.iter().map(split).collect()),
            ],
        },
        StatusCode::OK,
    ))
}

#[cfg(test)]
mod tests {
    use super::wait;

    #[test]
    fn a_wait_reads_in_the_unit_a_person_would_use() {
        assert_eq!(wait(1_440.0), "1.4 s");
        assert_eq!(wait(180_000.0), "3 min");
        assert_eq!(wait(7_500_000.0), "2 h 5 min");
    }
}
