//! Free slots for a service on a local date.
//!
//! A slot starts every `slot_step_minutes` from each opening (local wall-clock time), lasts the
//! service's duration and must end by the closing of the same range; with its buffer it must
//! not overlap `capacity` existing holds; it must start at least `min_notice` after now and no
//! later than the horizon. All arithmetic past the local start is in UTC, so a DST change
//! inside an appointment gives it its real length. A local start that does not exist (the
//! spring-forward gap) is skipped; one that exists twice (fall back) takes the first.
//! A staff member's slots come from their own weekly hours (the business's when they have
//! none), less the business's closures and their own days off.

use chrono::{DateTime, Datelike as _, Duration, NaiveDate, NaiveDateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::agenda::Interval;
use crate::bot_config::{BotSettings, Service, StaffMember, TimeRange};
use crate::scheduling::{appointment_at, occupied};
use crate::values::LocalDate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// The appointment itself (without buffer).
    pub appointment: Interval,
    /// Its start on the business's wall clock.
    pub local_start: NaiveDateTime,
}

/// The first instant whose local time is `local`, or, inside a DST gap, the first instant after
/// the gap.
fn to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = local;
    // A gap is at most a couple of hours; step forward minute by minute until time exists.
    for _ in 0..=180 {
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            return t.with_timezone(&Utc);
        }
        probe += Duration::minutes(1);
    }
    // Unreachable for real zones; fall back to reading the wall clock as UTC.
    local.and_utc()
}

/// Whether the business is closed all day (a closure covers the date).
pub fn is_closed_on(settings: &BotSettings, date: LocalDate) -> bool {
    settings
        .closures
        .iter()
        .any(|c| c.from <= date && date <= c.to)
}

/// The opening ranges of `date` as UTC intervals (none on a closure).
pub fn opening_intervals(settings: &BotSettings, date: LocalDate) -> Vec<(TimeRange, Interval)> {
    working_intervals(settings, None, date)
}

/// The ranges `member` works on `date` (the business's opening ranges for `None`), as UTC
/// intervals: none on a closure of the business or a day off of theirs.
pub fn working_intervals(
    settings: &BotSettings,
    member: Option<&StaffMember>,
    date: LocalDate,
) -> Vec<(TimeRange, Interval)> {
    let off = member.is_some_and(|m| m.time_off.iter().any(|c| c.from <= date && date <= c.to));
    if off || is_closed_on(settings, date) {
        return Vec::new();
    }
    let tz = settings.time_zone.tz();
    member
        .and_then(|m| m.hours.as_ref())
        .unwrap_or(&settings.hours)
        .on(date.weekday())
        .iter()
        .filter_map(|range| {
            let open = to_utc(tz, date.and_time(range.open.naive()));
            let close = to_utc(tz, date.and_time(range.close.naive()));
            Interval::new(open, close).map(|i| (*range, i))
        })
        .collect()
}

/// Free slots for `service` on `date`, given the holds on its resource's agenda that day.
pub fn free_slots(
    settings: &BotSettings,
    service: &Service,
    date: LocalDate,
    holds: &[Interval],
    now: DateTime<Utc>,
) -> Vec<Slot> {
    free_slots_with(settings, service, None, date, holds, now)
}

/// Free slots for `service` with `member` (the default resource for `None`) on `date`, given
/// the holds on their agenda that day.
pub fn free_slots_with(
    settings: &BotSettings,
    service: &Service,
    member: Option<&StaffMember>,
    date: LocalDate,
    holds: &[Interval],
    now: DateTime<Utc>,
) -> Vec<Slot> {
    let horizon = settings.rules.horizon_days;
    free_slots_within(settings, service, member, date, holds, now, horizon)
}

/// [`free_slots_with`] for a horizon of `horizon_days` rather than the business's own: the
/// bot looks past it (`rules.beyond_horizon_days`) when everything within it is full.
pub fn free_slots_within(
    settings: &BotSettings,
    service: &Service,
    member: Option<&StaffMember>,
    date: LocalDate,
    holds: &[Interval],
    now: DateTime<Utc>,
    horizon_days: u32,
) -> Vec<Slot> {
    let tz = settings.time_zone.tz();
    let rules = settings.rules;
    let earliest = now + Duration::minutes(i64::from(rules.min_notice_minutes));
    let latest = now + Duration::days(i64::from(horizon_days));
    let step = Duration::minutes(i64::from(rules.slot_step_minutes.max(1)));
    let capacity = service.capacity.max(1) as usize;

    let mut slots = Vec::new();
    for (range, opening) in working_intervals(settings, member, date) {
        let mut local = date.and_time(range.open.naive());
        let close_local = date.and_time(range.close.naive());
        while local < close_local {
            let candidate = tz.from_local_datetime(&local).earliest();
            local += step;
            let Some(start) = candidate.map(|t| t.with_timezone(&Utc)) else {
                continue; // this wall-clock time does not exist today
            };
            let appointment = appointment_at(start, service.duration);
            if appointment.end > opening.end || start < opening.start {
                continue;
            }
            if start < earliest || start > latest {
                continue;
            }
            let needs = occupied(appointment, service.buffer_minutes);
            let overlapping = holds.iter().filter(|h| h.overlaps(&needs)).count();
            if overlapping >= capacity {
                continue;
            }
            slots.push(Slot {
                appointment,
                local_start: local - step,
            });
        }
    }
    slots.sort_by_key(|s| s.appointment.start);
    slots.dedup_by_key(|s| s.appointment.start);
    slots
}

/// Whether `at` falls inside an opening range.
pub fn is_open_at(settings: &BotSettings, at: DateTime<Utc>) -> bool {
    let local_date = at.with_timezone(&settings.time_zone.tz()).date_naive();
    // A range of the previous local day cannot reach into this one (ranges end by midnight).
    opening_intervals(settings, local_date)
        .iter()
        .any(|(_, i)| i.start <= at && at < i.end)
}

/// The next time the business opens after `at` (within `days_ahead`), on its wall clock.
pub fn next_opening(
    settings: &BotSettings,
    at: DateTime<Utc>,
    days_ahead: u32,
) -> Option<DateTime<Tz>> {
    let tz = settings.time_zone.tz();
    let today: NaiveDate = at.with_timezone(&tz).date_naive();
    (0..=days_ahead)
        .filter_map(|d| today.checked_add_days(chrono::Days::new(u64::from(d))))
        .flat_map(|date| opening_intervals(settings, date))
        .map(|(_, i)| i.start)
        .find(|start| *start > at)
        .map(|start| start.with_timezone(&tz))
}

/// Local dates from `from` that have at least one opening range (not closed), up to `count`,
/// within `horizon_days`: the days the bot offers.
pub fn open_days(settings: &BotSettings, from: LocalDate, count: usize) -> Vec<LocalDate> {
    (0..=settings.rules.horizon_days)
        .filter_map(|d| from.checked_add_days(chrono::Days::new(u64::from(d))))
        .filter(|date| !opening_intervals(settings, *date).is_empty())
        .take(count)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot_config::tests::{haircut, range, settings};
    use crate::bot_config::{BookingRules, Closure, OpeningHours};
    use crate::values::{IanaTimeZone, ServiceDuration};
    use proptest::prelude::*;

    fn date(s: &str) -> LocalDate {
        s.parse().unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn local_times(slots: &[Slot]) -> Vec<String> {
        slots
            .iter()
            .map(|s| s.local_start.format("%H:%M").to_string())
            .collect()
    }

    #[test]
    fn slots_fill_the_opening_ranges_around_the_break() {
        // Tuesday 1 December 2026, Madrid is UTC+1.
        let slots = free_slots(
            &settings(),
            &haircut(),
            date("2026-12-01"),
            &[],
            utc("2026-11-30T08:00:00Z"),
        );
        let times = local_times(&slots);
        assert_eq!(times.first().unwrap(), "09:00");
        // 45 minutes must end by 13:00: 12:15 is the last morning slot.
        assert!(times.contains(&"12:15".to_string()) && !times.contains(&"12:30".to_string()));
        assert!(!times.contains(&"13:00".to_string()) && times.contains(&"14:00".to_string()));
        assert_eq!(times.last().unwrap(), "17:15");
        assert_eq!(slots[0].appointment.start, utc("2026-12-01T08:00:00Z"));
    }

    #[test]
    fn holds_with_their_buffer_notice_and_closures_remove_slots() {
        let day = date("2026-12-01");
        // A booking 10:00-10:45 local (09:00-09:45 UTC) with its 15 minute buffer.
        let held =
            [Interval::new(utc("2026-12-01T09:00:00Z"), utc("2026-12-01T10:00:00Z")).unwrap()];
        let times = local_times(&free_slots(
            &settings(),
            &haircut(),
            day,
            &held,
            utc("2026-11-30T08:00:00Z"),
        ));
        // 09:15 would run to 10:00 and its buffer to 10:15: overlaps.
        assert!(times.contains(&"09:00".to_string()) && !times.contains(&"09:15".to_string()));
        assert!(!times.contains(&"10:45".to_string()) && times.contains(&"11:00".to_string()));

        // An hour's notice at 10:20 local: the first slot is 11:30.
        let times = local_times(&free_slots(
            &settings(),
            &haircut(),
            day,
            &[],
            utc("2026-12-01T09:20:00Z"),
        ));
        assert_eq!(times.first().unwrap(), "11:30");

        let mut closed = settings();
        closed.closures.push(Closure {
            from: day,
            to: day,
            reason: Some("Holiday".into()),
        });
        assert!(free_slots(&closed, &haircut(), day, &[], utc("2026-11-30T08:00:00Z")).is_empty());
        // Sunday: no hours.
        assert!(
            free_slots(
                &settings(),
                &haircut(),
                date("2026-12-06"),
                &[],
                utc("2026-11-30T08:00:00Z")
            )
            .is_empty()
        );
    }

    #[test]
    fn the_horizon_limits_how_far_ahead() {
        let mut s = settings();
        s.rules = BookingRules {
            horizon_days: 7,
            ..BookingRules::default()
        };
        assert!(
            free_slots(
                &s,
                &haircut(),
                date("2026-12-15"),
                &[],
                utc("2026-12-01T08:00:00Z")
            )
            .is_empty()
        );
        assert!(
            !free_slots(
                &s,
                &haircut(),
                date("2026-12-04"),
                &[],
                utc("2026-12-01T08:00:00Z")
            )
            .is_empty()
        );
    }

    fn all_day(tz: &str) -> BotSettings {
        let mut s = settings();
        s.time_zone = IanaTimeZone::parse(tz).unwrap();
        let day = vec![range("00:00", "23:59")];
        s.hours = OpeningHours {
            monday: day.clone(),
            tuesday: day.clone(),
            wednesday: day.clone(),
            thursday: day.clone(),
            friday: day.clone(),
            saturday: day.clone(),
            sunday: day,
        };
        s.rules.slot_step_minutes = 60;
        s
    }

    #[test]
    fn the_spring_forward_day_has_no_slot_in_the_missing_hour() {
        // Madrid, Sunday 29 March 2026: 02:00 jumps to 03:00.
        let mut one_hour = haircut();
        one_hour.duration = ServiceDuration::parse(60).unwrap();
        one_hour.buffer_minutes = 0;
        let slots = free_slots(
            &all_day("Europe/Madrid"),
            &one_hour,
            date("2026-03-29"),
            &[],
            utc("2026-03-20T00:00:00Z"),
        );
        let times = local_times(&slots);
        assert!(!times.contains(&"02:00".to_string()));
        assert_eq!(
            times.len(),
            22,
            "00..22 hourly minus the missing 02:00: {times:?}"
        );
        // 01:00 local is 00:00 UTC; 03:00 local is 01:00 UTC: one real hour apart.
        let one = slots
            .iter()
            .find(|s| s.local_start.format("%H:%M").to_string() == "01:00")
            .unwrap();
        let three = slots
            .iter()
            .find(|s| s.local_start.format("%H:%M").to_string() == "03:00")
            .unwrap();
        assert_eq!(
            three.appointment.start - one.appointment.start,
            Duration::hours(1)
        );
    }

    #[test]
    fn the_fall_back_day_offers_the_repeated_hour_once() {
        // New York, Sunday 1 November 2026: 01:00-02:00 happens twice.
        let mut one_hour = haircut();
        one_hour.duration = ServiceDuration::parse(60).unwrap();
        one_hour.buffer_minutes = 0;
        let slots = free_slots(
            &all_day("America/New_York"),
            &one_hour,
            date("2026-11-01"),
            &[],
            utc("2026-10-20T00:00:00Z"),
        );
        let starts: Vec<_> = slots.iter().map(|s| s.appointment.start).collect();
        let mut unique = starts.clone();
        unique.dedup();
        assert_eq!(starts, unique);
        let at_one = slots
            .iter()
            .filter(|s| s.local_start.format("%H:%M").to_string() == "01:00")
            .count();
        assert_eq!(at_one, 1);
        // The 01:00 slot is the first 01:00 (EDT, UTC-4).
        let one = slots
            .iter()
            .find(|s| s.local_start.format("%H:%M").to_string() == "01:00")
            .unwrap();
        assert_eq!(one.appointment.start, utc("2026-11-01T05:00:00Z"));
    }

    #[test]
    fn opening_and_next_opening() {
        let s = settings();
        assert!(is_open_at(&s, utc("2026-12-01T09:30:00Z")));
        assert!(
            !is_open_at(&s, utc("2026-12-01T12:30:00Z")),
            "13:30 local is the lunch break"
        );
        // Saturday 14:30 local: closed until Monday 09:00.
        let next = next_opening(&s, utc("2026-12-05T13:30:00Z"), 7).unwrap();
        assert_eq!(next.format("%a %H:%M").to_string(), "Mon 09:00");
        let days = open_days(&s, date("2026-12-05"), 3);
        assert_eq!(
            days,
            [date("2026-12-05"), date("2026-12-07"), date("2026-12-08")]
        );
    }

    fn arb_time() -> impl Strategy<Value = (u32, u32)> {
        (
            0u32..24,
            prop_oneof![Just(0u32), Just(15), Just(30), Just(45)],
        )
    }

    prop_compose! {
        fn arb_range()(a in arb_time(), b in arb_time()) -> Option<TimeRange> {
            let (open, close) = if a < b { (a, b) } else { (b, a) };
            (open != close).then(|| TimeRange {
                open: crate::values::LocalTime::from_hm(open.0, open.1).unwrap(),
                close: crate::values::LocalTime::from_hm(close.0, close.1).unwrap(),
            })
        }
    }

    prop_compose! {
        fn arb_case()(
            zone in prop_oneof![Just("Europe/Madrid"), Just("America/New_York"), Just("Asia/Kolkata"), Just("Australia/Sydney")],
            // Around both DST changes of 2026 in these zones, and ordinary days.
            day in prop_oneof![Just("2026-03-08"), Just("2026-03-29"), Just("2026-04-05"), Just("2026-10-04"), Just("2026-10-25"), Just("2026-11-01"), Just("2026-06-15")],
            ranges in proptest::collection::vec(arb_range(), 1..3),
            duration in 5u32..240,
            buffer in 0u32..60,
            step in prop_oneof![Just(5u32), Just(15), Just(30), Just(60)],
            notice in 0u32..600,
            now_offset_hours in -48i64..24,
            holds in proptest::collection::vec((0i64..(24 * 60), 5i64..180), 0..6),
        ) -> (BotSettings, Service, LocalDate, Vec<Interval>, DateTime<Utc>) {
            let mut s = settings();
            s.time_zone = IanaTimeZone::parse(zone).unwrap();
            let mut ranges: Vec<TimeRange> = ranges.into_iter().flatten().collect();
            ranges.sort_by_key(|r| r.open);
            // Keep them disjoint: drop any that overlaps the previous.
            let mut disjoint: Vec<TimeRange> = Vec::new();
            for r in ranges {
                if disjoint.last().is_none_or(|p| p.close <= r.open) {
                    disjoint.push(r);
                }
            }
            s.hours = OpeningHours {
                monday: disjoint.clone(), tuesday: disjoint.clone(), wednesday: disjoint.clone(),
                thursday: disjoint.clone(), friday: disjoint.clone(), saturday: disjoint.clone(), sunday: disjoint,
            };
            s.rules = BookingRules { min_notice_minutes: notice, horizon_days: 30, slot_step_minutes: step, ..BookingRules::default() };
            let mut service = haircut();
            service.duration = ServiceDuration::parse(duration.max(5)).unwrap();
            service.buffer_minutes = buffer;
            let date: LocalDate = day.parse().unwrap();
            let midnight = to_utc(s.time_zone.tz(), date.and_hms_opt(0, 0, 0).unwrap());
            let holds = holds.into_iter().map(|(start, len)| {
                Interval::new(midnight + Duration::minutes(start), midnight + Duration::minutes(start + len)).unwrap()
            }).collect();
            let now = midnight + Duration::hours(now_offset_hours);
            (s, service, date, holds, now)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn generated_slots_respect_every_rule((s, service, date, holds, now) in arb_case()) {
            let slots = free_slots(&s, &service, date, &holds, now);
            let openings = opening_intervals(&s, date);
            for slot in &slots {
                let needs = occupied(slot.appointment, service.buffer_minutes);
                prop_assert!(holds.iter().all(|h| !h.overlaps(&needs)), "overlaps a hold: {slot:?}");
                prop_assert!(
                    openings.iter().any(|(_, o)| o.start <= slot.appointment.start && slot.appointment.end <= o.end),
                    "outside opening hours: {slot:?}"
                );
                prop_assert!(slot.appointment.start >= now + Duration::minutes(i64::from(s.rules.min_notice_minutes)));
                prop_assert!(slot.appointment.start <= now + Duration::days(30));
                prop_assert_eq!(slot.appointment.end - slot.appointment.start, service.duration.as_duration());
                let local = slot.appointment.start.with_timezone(&s.time_zone.tz()).naive_local();
                prop_assert_eq!(local, slot.local_start, "the local start is the real wall-clock time");
            }
            prop_assert!(slots.windows(2).all(|w| w[0].appointment.start < w[1].appointment.start));
        }
    }
}
