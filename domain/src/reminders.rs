//! Reminders before an appointment: when they go (decided with the booking, from the
//! business's settings) and what they say. More than 24 hours after the customer last wrote,
//! WhatsApp takes only an approved template, so a reminder goes as the business's template
//! when it has one, and as reply buttons within the window otherwise. Either way its buttons
//! come back as `remind:<answer>:<booking id>`, which the engine acts on whatever the
//! conversation was doing. A reply refused for the window (131047) can go again as the
//! business's follow-up template.

use chrono::{DateTime, Days, TimeZone as _, Utc};

use crate::booking::Booking;
use crate::bot::i18n;
use crate::bot::message::{Choice, Reply, render};
use crate::bot_config::BotSettings;
use crate::ids::BookingId;

/// How long after the customer's last message a free-form message may still be sent, with a
/// margin for the time a send takes.
pub const WINDOW: chrono::Duration = chrono::Duration::minutes(24 * 60 - 10);

const DAY_MINUTES: u32 = 24 * 60;

/// When the reminders of an appointment starting at `start` go, soonest first. A whole
/// number of days before is the same local time that many days earlier, also across a change
/// of clocks; other offsets are exact durations.
pub fn reminder_times(settings: &BotSettings, start: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let tz = settings.time_zone.tz();
    let mut times: Vec<DateTime<Utc>> = settings
        .messaging
        .reminders_before_minutes
        .iter()
        .map(|&minutes| {
            let exact = start - chrono::Duration::minutes(i64::from(minutes));
            if minutes % DAY_MINUTES != 0 {
                return exact;
            }
            let local = start.with_timezone(&tz).naive_local();
            local
                .checked_sub_days(Days::new(u64::from(minutes / DAY_MINUTES)))
                .and_then(|earlier| tz.from_local_datetime(&earlier).earliest())
                .map_or(exact, |t| t.with_timezone(&Utc))
        })
        .collect();
    times.sort();
    times.dedup();
    times
}

/// A customer's answer to a reminder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReminderAnswer {
    Confirm,
    Reschedule,
    Cancel,
}

impl ReminderAnswer {
    /// In the order of the template's quick-reply buttons.
    pub const ALL: [ReminderAnswer; 3] = [Self::Confirm, Self::Reschedule, Self::Cancel];

    const fn word(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Reschedule => "resched",
            Self::Cancel => "cancel",
        }
    }

    /// The id its button carries.
    pub fn payload(self, booking_id: BookingId) -> String {
        format!("remind:{}:{booking_id}", self.word())
    }

    /// The answer and booking a button id carries, if it is a reminder's.
    pub fn of(id: &str) -> Option<(Self, BookingId)> {
        let rest = id.strip_prefix("remind:")?;
        let (word, booking) = rest.split_once(':')?;
        let answer = Self::ALL.into_iter().find(|a| a.word() == word)?;
        Some((answer, booking.parse().ok()?))
    }
}

/// The reminder of `booking`, or none when it cannot be sent: no template, and the customer
/// last wrote (`last_heard`) more than 24 hours before `now`, or never.
pub fn reminder_reply(
    settings: &BotSettings,
    booking: &Booking,
    last_heard: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<Reply> {
    let language = settings.flow.language;
    let labels = i18n::labels(language);
    let (date, time) = i18n::local_date_and_time(settings, booking.appointment.start);
    let name = booking
        .customer
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| labels.customer.to_owned());
    let payloads = ReminderAnswer::ALL.map(|a| a.payload(booking.booking_id));
    if let Some(template) = &settings.messaging.reminder_template {
        return Some(Reply::template(
            &template.name,
            &template.language,
            [name, booking.service_name.clone(), date, time],
            payloads.to_vec(),
        ));
    }
    if last_heard.is_none_or(|t| now - t >= WINDOW) {
        return None;
    }
    let body = render(
        &settings.flow.texts.reminder,
        &[
            ("name", &name),
            ("service", &booking.service_name),
            ("date", &date),
            ("time", &time),
        ],
    );
    let titles = [labels.confirm, labels.reschedule, labels.cancel];
    let buttons = payloads
        .into_iter()
        .zip(titles)
        .map(|(id, title)| Choice {
            id,
            title: title.to_owned(),
            description: None,
        })
        .collect();
    Some(Reply::choices(body, labels.options, buttons))
}

/// A change the business made to a customer's booking (from the dashboard or the API), which
/// the customer is told of on WhatsApp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingChange<'a> {
    /// Cancelled, with the reason the business gave, if any.
    Cancelled { reason: Option<&'a str> },
    /// Moved: `booking` is at its new time.
    Moved,
}

/// What the customer is told of `change` to `booking` (as it is after the change): the bot's
/// own text for it (`cancelled`, `rescheduled`), with the business's reason. Within 24 hours of
/// the customer's last message it goes as text; after that only as the business's follow-up
/// template, and without one it cannot be sent (`None`).
pub fn change_notice(
    settings: &BotSettings,
    booking: &Booking,
    change: BookingChange<'_>,
    last_heard: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<Reply> {
    let (date, time) = i18n::local_date_and_time(settings, booking.appointment.start);
    let values = [
        ("reference", booking.reference.as_str()),
        ("service", &booking.service_name),
        ("date", &date),
        ("time", &time),
    ];
    let body = match change {
        BookingChange::Cancelled { reason } => {
            let said = render(&settings.flow.texts.cancelled, &values);
            match reason.map(str::trim).filter(|r| !r.is_empty()) {
                Some(reason) => format!("{said}\n{reason}"),
                None => said,
            }
        }
        BookingChange::Moved => render(&settings.flow.texts.rescheduled, &values),
    };
    let reply = Reply::text(body);
    if last_heard.is_some_and(|t| now - t < WINDOW) {
        Some(reply)
    } else {
        follow_up(settings, &reply)
    }
}

/// What a reply WhatsApp refused for the 24-hour window goes again as: the business's
/// follow-up template with the reply's text, if it has one (a template is never followed up).
pub fn follow_up(settings: &BotSettings, refused: &Reply) -> Option<Reply> {
    if matches!(refused, Reply::Template { .. }) {
        return None;
    }
    let template = settings.messaging.follow_up_template.as_ref()?;
    Some(Reply::template(
        &template.name,
        &template.language,
        [refused.body().to_owned()],
        vec![],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::booking::{BookingStatus, Customer};
    use crate::bot_config::TemplateRef;
    use crate::bot_config::tests::settings;
    use crate::ids::{ResourceId, ServiceId};
    use crate::values::{Money, PhoneNumber};

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn booking(start: &str, name: Option<&str>) -> Booking {
        let start = utc(start);
        Booking {
            booking_id: BookingId::from_uuid(uuid::Uuid::from_u128(5)),
            reference: "BK-1".into(),
            service_id: ServiceId::from_uuid(uuid::Uuid::from_u128(7)),
            service_name: "Haircut".into(),
            price: Money::parse(2500, "EUR").unwrap(),
            resource: ResourceId::default_resource(),
            appointment: crate::agenda::Interval::new(start, start + chrono::Duration::hours(1))
                .unwrap(),
            customer: Customer {
                phone: PhoneNumber::parse("+34600000001").unwrap(),
                name: name.map(str::to_owned),
            },
            status: BookingStatus::Confirmed,
            reminders: vec![],
            attendance_confirmed: false,
            arrived_at: None,
        }
    }

    #[test]
    fn a_day_before_is_the_same_local_time_across_a_change_of_clocks() {
        // Madrid springs forward on Sunday 29 March 2026 (CET to CEST): a Sunday 10:00
        // appointment (08:00 UTC) is reminded on Saturday at 10:00 (09:00 UTC), not 24 hours
        // before (09:00 local); two hours before stays two hours.
        let s = settings();
        assert_eq!(
            reminder_times(&s, utc("2026-03-29T08:00:00Z")),
            vec![utc("2026-03-28T09:00:00Z"), utc("2026-03-29T06:00:00Z")]
        );
        // And back in October: Sunday 25th 10:00 CET (09:00 UTC), Saturday 10:00 CEST.
        assert_eq!(
            reminder_times(&s, utc("2026-10-25T09:00:00Z"))[0],
            utc("2026-10-24T08:00:00Z")
        );
        // A reminder whose local time does not exist that day is the exact duration before.
        let mut night = settings();
        night.messaging.reminders_before_minutes = vec![24 * 60];
        assert_eq!(
            reminder_times(&night, utc("2026-03-30T00:30:00Z")),
            vec![utc("2026-03-29T00:30:00Z")]
        );
    }

    #[test]
    fn a_reminder_is_a_template_when_there_is_one_and_buttons_only_within_the_window() {
        let mut s = settings();
        let b = booking("2026-12-04T09:00:00Z", Some("Ana"));
        let now = utc("2026-12-03T09:00:00Z");
        assert_eq!(reminder_reply(&s, &b, None, now), None);
        assert_eq!(
            reminder_reply(&s, &b, Some(now - chrono::Duration::hours(25)), now),
            None
        );
        let buttons = reminder_reply(&s, &b, Some(now - chrono::Duration::hours(2)), now).unwrap();
        assert_eq!(
            buttons.body(),
            "Hi Ana, a reminder of your Haircut on Fri 4 Dec at 10:00. Will you come?"
        );
        let ids: Vec<_> = buttons.offered().iter().map(|c| c.id.clone()).collect();
        assert_eq!(
            ReminderAnswer::of(&ids[2]),
            Some((ReminderAnswer::Cancel, b.booking_id))
        );
        assert!(buttons.fits_whatsapp());

        s.messaging.reminder_template = Some(TemplateRef {
            name: "booking_reminder".into(),
            language: "es".into(),
        });
        s.flow.language = crate::bot_config::Language::Es;
        let unnamed = booking("2026-12-04T09:00:00Z", None);
        let Some(Reply::Template {
            name,
            language,
            body,
            buttons,
        }) = reminder_reply(&s, &unnamed, None, now)
        else {
            panic!("a template")
        };
        assert_eq!(
            (name.as_str(), language.as_str()),
            ("booking_reminder", "es")
        );
        assert_eq!(body, ["cliente", "Haircut", "vie 4 dic", "10:00"]);
        assert_eq!(buttons.len(), 3);
        assert_eq!(
            ReminderAnswer::of(&buttons[0]),
            Some((ReminderAnswer::Confirm, unnamed.booking_id))
        );
        assert_eq!(ReminderAnswer::of("remind:maybe:x"), None);
        assert_eq!(ReminderAnswer::of("cancel:x"), None);
    }

    #[test]
    fn a_change_by_the_business_is_told_as_text_within_the_window_else_as_the_follow_up() {
        let mut s = settings();
        let b = booking("2026-12-04T09:00:00Z", Some("Ana"));
        let now = utc("2026-12-03T09:00:00Z");
        let cancelled = BookingChange::Cancelled {
            reason: Some("The salon closes early"),
        };
        let heard = Some(now - chrono::Duration::hours(2));
        let Some(Reply::Text { body }) = change_notice(&s, &b, cancelled, heard, now) else {
            panic!("a text within the window");
        };
        assert!(
            body.contains("BK-1") && body.contains("cancelled"),
            "{body}"
        );
        assert!(body.ends_with("\nThe salon closes early"), "{body}");
        let Some(Reply::Text { body }) = change_notice(&s, &b, BookingChange::Moved, heard, now)
        else {
            panic!("a text within the window");
        };
        assert!(body.contains("is now on"), "{body}");
        let long_ago = Some(now - chrono::Duration::hours(30));
        assert_eq!(change_notice(&s, &b, cancelled, long_ago, now), None);
        assert_eq!(change_notice(&s, &b, cancelled, None, now), None);
        s.messaging.follow_up_template = Some(TemplateRef {
            name: "follow_up".into(),
            language: "en".into(),
        });
        let Some(Reply::Template { name, body, .. }) =
            change_notice(&s, &b, cancelled, long_ago, now)
        else {
            panic!("the follow-up template after the window");
        };
        assert_eq!(name, "follow_up");
        assert!(
            body[0].contains("cancelled") && body[0].contains("closes early"),
            "{body:?}"
        );
    }

    #[test]
    fn a_refused_reply_follows_up_as_a_template_once() {
        let mut s = settings();
        let reply = Reply::text("Booked!\nSee you    soon.");
        assert_eq!(follow_up(&s, &reply), None);
        s.messaging.follow_up_template = Some(TemplateRef {
            name: "follow_up".into(),
            language: "en".into(),
        });
        let template = follow_up(&s, &reply).unwrap();
        assert!(template.fits_whatsapp());
        assert_eq!(template.body(), "Booked! · See you soon.");
        assert_eq!(follow_up(&s, &template), None);
    }
}
