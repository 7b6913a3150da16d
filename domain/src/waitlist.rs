//! Who waits for a time of a service the calendar has none of. Stream `waitlist/<service_id>`.
//!
//! A customer the bot found no free time for can join; when a booking of the service is
//! cancelled or moved, the time it frees is offered on WhatsApp to those waiting, in the order
//! they joined (at most [`OFFERED_AT_ONCE`] of them), and the first to take it books it: the
//! agenda decides, as for any booking. A customer leaves by booking the service, by saying no
//! thanks to an offer, or by asking to.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::bot::i18n;
use crate::bot::message::{Choice, Reply, render};
use crate::bot_config::{BotSettings, Service};
use crate::decider::Decider;
use crate::event::DomainEvent;
use crate::ids::ServiceId;
use crate::reminders::WINDOW;
use crate::values::PhoneNumber;

/// How many of those waiting hear of one freed time.
pub const OFFERED_AT_ONCE: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitlistCommand {
    Join {
        phone: PhoneNumber,
        name: Option<String>,
        now: DateTime<Utc>,
    },
    Leave {
        phone: PhoneNumber,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum WaitlistEvent {
    CustomerWaitlisted {
        phone: PhoneNumber,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        at: DateTime<Utc>,
    },
    CustomerLeftWaitlist {
        phone: PhoneNumber,
    },
}

impl DomainEvent for WaitlistEvent {
    const STREAM_TYPE: &'static str = "waitlist";

    fn event_type(&self) -> &'static str {
        match self {
            Self::CustomerWaitlisted { .. } => "CustomerWaitlisted",
            Self::CustomerLeftWaitlist { .. } => "CustomerLeftWaitlist",
        }
    }
}

/// One customer waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub phone: PhoneNumber,
    pub name: Option<String>,
    pub since: DateTime<Utc>,
}

/// Those waiting, first come first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitlistState {
    pub waiting: Vec<Waiting>,
}

impl WaitlistState {
    pub fn contains(&self, phone: &PhoneNumber) -> bool {
        self.waiting.iter().any(|w| w.phone == *phone)
    }

    /// Who hears of a freed time: the first in line, not `except` (who freed it).
    pub fn first(&self, except: &PhoneNumber) -> impl Iterator<Item = &Waiting> {
        self.waiting
            .iter()
            // An erased customer (their entry reads as a stand-in) waits for nothing.
            .filter(move |w| w.phone != *except && !crate::personal::is_erased(&w.phone))
            .take(OFFERED_AT_ONCE)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitlistError {}

pub struct Waitlist;

impl Decider for Waitlist {
    type State = WaitlistState;
    type Command = WaitlistCommand;
    type Event = WaitlistEvent;
    type Error = WaitlistError;

    fn decide(
        state: &WaitlistState,
        command: WaitlistCommand,
    ) -> Result<Vec<WaitlistEvent>, WaitlistError> {
        Ok(match command {
            WaitlistCommand::Join { phone, name, now } if !state.contains(&phone) => {
                vec![WaitlistEvent::CustomerWaitlisted {
                    phone,
                    name,
                    at: now,
                }]
            }
            WaitlistCommand::Leave { phone } if state.contains(&phone) => {
                vec![WaitlistEvent::CustomerLeftWaitlist { phone }]
            }
            _ => vec![],
        })
    }

    fn evolve(mut state: WaitlistState, event: &WaitlistEvent) -> WaitlistState {
        match event {
            WaitlistEvent::CustomerWaitlisted { phone, name, at } => state.waiting.push(Waiting {
                phone: phone.clone(),
                name: name.clone(),
                since: *at,
            }),
            WaitlistEvent::CustomerLeftWaitlist { phone } => {
                state.waiting.retain(|w| w.phone != *phone)
            }
        }
        state
    }
}

/// A waiting customer's answer to an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferAnswer {
    /// Book the time offered (`start`).
    Take(DateTime<Utc>),
    /// No thanks: off the waitlist.
    Leave,
}

impl OfferAnswer {
    /// The id its button carries.
    pub fn payload(self, service: ServiceId) -> String {
        match self {
            Self::Take(start) => format!("wait:take:{service}:{}", start.timestamp()),
            Self::Leave => format!("wait:leave:{service}"),
        }
    }

    /// The answer and service a button id carries, if it is an offer's.
    pub fn of(id: &str) -> Option<(Self, ServiceId)> {
        let rest = id.strip_prefix("wait:")?;
        if let Some(service) = rest.strip_prefix("leave:") {
            return Some((Self::Leave, service.parse().ok()?));
        }
        let (service, start) = rest.strip_prefix("take:")?.rsplit_once(':')?;
        let start = DateTime::from_timestamp(start.parse().ok()?, 0)?;
        Some((Self::Take(start), service.parse().ok()?))
    }
}

/// The offer of a freed time of `service` at `start`, in the business's language: reply
/// buttons while the customer last wrote (`last_heard`) within 24 hours of `now`, else the
/// business's waitlist template when it has one.
pub fn offer_reply(
    settings: &BotSettings,
    service: &Service,
    start: DateTime<Utc>,
    last_heard: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Reply {
    let labels = i18n::labels(settings.flow.language);
    let (date, time) = i18n::local_date_and_time(settings, start);
    let payloads = [
        OfferAnswer::Take(start).payload(service.id),
        OfferAnswer::Leave.payload(service.id),
    ];
    let outside_window = last_heard.is_none_or(|t| now - t >= WINDOW);
    if let Some(template) = settings.messaging.waitlist_template.as_ref()
        && outside_window
    {
        return Reply::template(
            &template.name,
            &template.language,
            [service.name.clone(), date, time],
            payloads.to_vec(),
        );
    }
    let body = render(
        &settings.flow.texts.waitlist_offer,
        &[("service", &service.name), ("date", &date), ("time", &time)],
    );
    let choices = payloads
        .into_iter()
        .zip([labels.book_it, labels.no_thanks])
        .map(|(id, title)| Choice {
            id,
            title: title.to_owned(),
            description: None,
        })
        .collect();
    Reply::choices(body, labels.options, choices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot_config::tests::{haircut, settings};
    use crate::decider::scenario::given;
    use crate::event::assert_round_trips;

    fn phone(n: u32) -> PhoneNumber {
        PhoneNumber::parse(&format!("+3460000{n:04}")).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        format!("2026-12-01T{s}:00Z").parse().unwrap()
    }

    fn joined(n: u32, time: &str) -> WaitlistEvent {
        WaitlistEvent::CustomerWaitlisted {
            phone: phone(n),
            name: None,
            at: at(time),
        }
    }

    #[test]
    fn customers_join_once_leave_once_and_are_offered_first_come_first() {
        given::<Waitlist>(&[])
            .when(WaitlistCommand::Join {
                phone: phone(1),
                name: None,
                now: at("08:00"),
            })
            .then_expect(&[joined(1, "08:00")]);
        given::<Waitlist>(&[joined(1, "08:00")])
            .when(WaitlistCommand::Join {
                phone: phone(1),
                name: None,
                now: at("09:00"),
            })
            .then_expect(&[]);
        given::<Waitlist>(&[joined(1, "08:00")])
            .when(WaitlistCommand::Leave { phone: phone(2) })
            .then_expect(&[]);
        let state = Waitlist::fold(&[
            joined(1, "08:00"),
            joined(2, "08:05"),
            joined(3, "08:10"),
            WaitlistEvent::CustomerLeftWaitlist { phone: phone(1) },
        ]);
        let order: Vec<_> = state.first(&phone(3)).map(|w| w.phone.clone()).collect();
        assert_eq!(order, [phone(2)]);
        let many = Waitlist::fold(&(0..20).map(|n| joined(n, "08:00")).collect::<Vec<_>>());
        assert_eq!(many.first(&phone(99)).count(), OFFERED_AT_ONCE);
        assert_round_trips(&[
            joined(1, "08:00"),
            WaitlistEvent::CustomerLeftWaitlist { phone: phone(1) },
        ]);
    }

    #[test]
    fn an_offer_names_the_time_and_its_buttons_come_back() {
        let mut s = settings();
        let now = at("08:00");
        let heard = Some(now - chrono::Duration::hours(3));
        let offer = offer_reply(&s, &haircut(), at("09:00"), heard, now);
        assert!(offer.fits_whatsapp());
        assert_eq!(
            offer.body(),
            "Good news: Haircut on Tue 1 Dec at 10:00 has just become free. Shall I book it for you?"
        );
        let ids: Vec<_> = offer.offered().iter().map(|c| c.id.clone()).collect();
        assert_eq!(
            OfferAnswer::of(&ids[0]),
            Some((OfferAnswer::Take(at("09:00")), haircut().id))
        );
        assert_eq!(
            OfferAnswer::of(&ids[1]),
            Some((OfferAnswer::Leave, haircut().id))
        );
        assert_eq!(OfferAnswer::of("wait:take:nonsense"), None);
        // Without a template, buttons also outside the window (a refusal follows up).
        let stale = offer_reply(&s, &haircut(), at("09:00"), None, now);
        assert!(matches!(stale, Reply::Buttons { .. }), "{stale:?}");

        s.messaging.waitlist_template = Some(crate::bot_config::TemplateRef {
            name: "waitlist_offer".into(),
            language: "en".into(),
        });
        assert_eq!(offer_reply(&s, &haircut(), at("09:00"), heard, now), offer);
        let long_ago = Some(now - chrono::Duration::hours(30));
        let Reply::Template {
            name,
            body,
            buttons,
            ..
        } = offer_reply(&s, &haircut(), at("09:00"), long_ago, now)
        else {
            panic!("a template outside the window")
        };
        assert_eq!(name, "waitlist_offer");
        assert_eq!(body, ["Haircut", "Tue 1 Dec", "10:00"]);
        assert_eq!(buttons, ids, "the same answers as the buttons");
    }
}
