//! Whole conversations, message by message, against an in-memory calendar that carries out
//! the engine's actions with the same domain function the command side runs
//! ([`CustomerCalendar::carry_out`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::calendar::CustomerCalendar;
use super::engine::*;
use super::message::{Inbound, Reply};
use crate::agenda::{AgendaState, Interval};
use crate::bot_config::tests::{haircut, range, settings};
use crate::bot_config::{BotConfigState, BotSettings, KeywordReply, Service};
use crate::ids::{BookingId, ResourceId, ServiceId};
use crate::values::{LocalDate, Money, PhoneNumber, ServiceDuration};

struct World {
    settings: BotSettings,
    services: Vec<Service>,
    /// The customer's bookings and the agenda days, as the command side would load them.
    calendar: CustomerCalendar,
    state: BotState,
    now: DateTime<Utc>,
    next_id: u128,
    last_actions: Vec<BotAction>,
    last_expired: bool,
    /// Whether the plan takes a new booking (the command side decides it).
    bookings_open: bool,
}

fn beard() -> Service {
    Service {
        id: ServiceId::from_uuid(uuid::Uuid::from_u128(8)),
        name: "Beard trim".into(),
        description: None,
        price: Money::parse(1200, "EUR").unwrap(),
        duration: ServiceDuration::parse(30).unwrap(),
        buffer_minutes: 0,
        capacity: 1,
        category: None,
        active: true,
    }
}

impl World {
    /// Demo Salon, Monday 30 November 2026, 09:30 in Madrid.
    fn new() -> Self {
        Self {
            settings: settings(),
            services: vec![haircut(), beard()],
            calendar: CustomerCalendar::default(),
            state: BotState::default(),
            now: "2026-11-30T08:30:00Z".parse().unwrap(),
            next_id: 100,
            last_actions: Vec::new(),
            last_expired: false,
            bookings_open: true,
        }
    }

    /// The configuration as the command side folds it from the stream.
    fn config(&self) -> BotConfigState {
        BotConfigState {
            version: 1,
            settings: Some(self.settings.clone()),
            services: self
                .services
                .iter()
                .map(|s| (s.id, s.clone()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn send(&mut self, inbound: Inbound) -> Vec<Reply> {
        self.next_id += 1;
        let config = self.config();
        self.calendar.buffers = config
            .services
            .values()
            .map(|s| (s.id, s.buffer_minutes))
            .collect();
        let ctx = BotContext {
            business_name: "Demo Salon",
            contact: "hello@demo-salon.example",
            settings: &self.settings,
            services: &self.services,
            bookings_open: self.bookings_open,
        };
        let turn = step(
            &ctx,
            &self.calendar,
            &self.state,
            Input {
                inbound: &inbound,
                profile_name: Some("Ana WhatsApp"),
                now: self.now,
                new_booking_id: BookingId::from_uuid(uuid::Uuid::from_u128(self.next_id)),
            },
        );
        for reply in &turn.replies {
            assert!(
                reply.fits_whatsapp(),
                "outside WhatsApp's limits: {reply:?}"
            );
        }
        self.state = turn.state;
        self.last_expired = turn.expired;
        let customer = PhoneNumber::parse("+34600000001").unwrap();
        self.calendar
            .carry_out(&config, &turn.actions, &customer, self.now)
            .expect("the engine's actions fit the calendar");
        self.last_actions = turn.actions;
        self.now += Duration::seconds(20);
        turn.replies
    }

    /// Holds on every agenda day (what another customer would see).
    fn holds(&self) -> Vec<(BookingId, Interval)> {
        self.calendar
            .agendas
            .values()
            .flat_map(|a| a.holds.clone())
            .collect()
    }

    fn say(&mut self, text: &str) -> Vec<Reply> {
        self.send(Inbound::Text { body: text.into() })
    }

    /// Taps the offered choice whose title contains `title`.
    fn tap(&mut self, title: &str) -> Vec<Reply> {
        let prompt = self.state.prompt.clone().expect("a question was asked");
        let choice = prompt
            .offered()
            .iter()
            .find(|c| c.title.contains(title))
            .unwrap_or_else(|| panic!("no choice {title:?} in {:?}", prompt.offered()))
            .clone();
        let inbound = match prompt {
            Reply::Buttons { .. } => Inbound::ButtonReply {
                id: choice.id,
                title: choice.title,
            },
            _ => Inbound::ListReply {
                id: choice.id,
                title: choice.title,
            },
        };
        self.send(inbound)
    }

    fn titles(replies: &[Reply]) -> Vec<String> {
        replies
            .last()
            .map(|r| r.offered().iter().map(|c| c.title.clone()).collect())
            .unwrap_or_default()
    }
}

fn bodies(replies: &[Reply]) -> String {
    replies
        .iter()
        .map(Reply::body)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Books Haircut on Tuesday at 10:00 (payment in cash), asserting along the way.
fn book_haircut(w: &mut World) -> BookingId {
    let replies = w.say("hi");
    assert!(
        bodies(&replies).contains("Welcome to Demo Salon"),
        "{}",
        bodies(&replies)
    );
    assert_eq!(World::titles(&replies), ["Haircut", "Beard trim"]);
    let replies = w.tap("Haircut");
    assert!(bodies(&replies).contains("Which day suits you for Haircut?"));
    let replies = w.tap("Tue 1 Dec");
    assert!(bodies(&replies).contains("free on Tue 1 Dec"));
    assert_eq!(World::titles(&replies)[0], "09:00");
    let replies = w.tap("10:00");
    assert!(
        bodies(&replies).contains("What name"),
        "{}",
        bodies(&replies)
    );
    let replies = w.say("Ana García");
    assert!(
        bodies(&replies).contains("Haircut on Tue 1 Dec at 10:00 for 25.00 EUR"),
        "{}",
        bodies(&replies)
    );
    let replies = w.tap("Confirm");
    assert_eq!(World::titles(&replies), ["Cash", "Bank transfer"]);
    let replies = w.tap("Cash");
    let text = bodies(&replies);
    assert!(
        text.contains("Booked! Haircut on Tue 1 Dec at 10:00"),
        "{text}"
    );
    assert!(text.contains("Please pay at the venue."));
    let [
        BotAction::RequestBooking {
            booking_id,
            reference,
            customer_name,
            confirm,
            start,
            ..
        },
    ] = &w.last_actions[..]
    else {
        panic!("expected one booking request: {:?}", w.last_actions)
    };
    assert!(text.contains(reference.as_str()));
    assert_eq!(customer_name.as_deref(), Some("Ana García"));
    assert!(*confirm, "cash bookings are confirmed at once");
    assert_eq!(
        *start,
        "2026-12-01T09:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(w.state.step, Step::Idle);
    *booking_id
}

#[test]
fn a_customer_books_from_hi_to_confirmed() {
    let mut w = World::new();
    book_haircut(&mut w);
    // The slot is gone for the next customer.
    let mut other = World::new();
    other.calendar.agendas = w.calendar.agendas.clone();
    other.say("hi");
    other.tap("Haircut");
    let replies = other.tap("Tue 1 Dec");
    assert!(!World::titles(&replies).contains(&"10:00".to_string()));
}

#[test]
fn typed_answers_choose_by_number_or_title_and_nonsense_is_asked_again() {
    let mut w = World::new();
    w.say("hola");
    let replies = w.say("2");
    assert!(
        bodies(&replies).contains("for Beard trim"),
        "{}",
        bodies(&replies)
    );
    let replies = w.say("banana");
    assert!(bodies(&replies).starts_with("Sorry, I did not get that."));
    assert!(
        bodies(&replies).contains("Which day suits you for Beard trim?"),
        "the same question again"
    );
    assert_eq!(w.state.step, Step::ChoosingDay);
    let replies = w.say("tue 1 dec");
    assert!(
        bodies(&replies).contains("free on Tue 1 Dec"),
        "{}",
        bodies(&replies)
    );
}

#[test]
fn a_customer_cancels_from_whatsapp() {
    let mut w = World::new();
    let booking = book_haircut(&mut w);
    let replies = w.say("I want to cancel");
    assert!(bodies(&replies).contains("Which booking should I cancel?"));
    let replies = w.tap("Tue 1 Dec 10:00");
    assert!(
        bodies(&replies).contains("is cancelled"),
        "{}",
        bodies(&replies)
    );
    assert_eq!(
        w.last_actions,
        [BotAction::CancelBooking {
            booking_id: booking
        }]
    );
    assert!(w.holds().is_empty());
    let replies = w.say("cancel");
    assert!(bodies(&replies).contains("no upcoming booking"));
}

#[test]
fn while_bookings_are_paused_the_bot_says_so_and_how_to_reach_the_business() {
    let mut w = World::new();
    let booking = book_haircut(&mut w);
    w.bookings_open = false;
    let replies = w.say("hi");
    let text = bodies(&replies);
    assert!(text.contains("Online booking is paused"), "{text}");
    assert!(text.contains("hello@demo-salon.example"), "{text}");
    assert!(w.last_actions.is_empty());
    assert!(World::titles(&replies).is_empty(), "no services offered");
    // What the customer already has stays theirs to cancel.
    w.say("cancel");
    w.tap("Tue 1 Dec 10:00");
    assert_eq!(
        w.last_actions,
        [BotAction::CancelBooking {
            booking_id: booking
        }]
    );
}

#[test]
fn bookings_paused_while_a_customer_was_choosing_take_no_booking() {
    let mut w = World::new();
    w.say("hi");
    w.tap("Haircut");
    w.tap("Tue 1 Dec");
    w.tap("10:00");
    w.say("Ana García");
    w.tap("Confirm");
    w.bookings_open = false;
    let replies = w.tap("Cash");
    let text = bodies(&replies);
    assert!(text.contains("Online booking is paused"), "{text}");
    assert!(!text.contains("Booked!"), "{text}");
    assert!(w.last_actions.is_empty());
    assert!(w.holds().is_empty());
}

#[test]
fn a_customer_reschedules_from_whatsapp() {
    let mut w = World::new();
    let booking = book_haircut(&mut w);
    w.say("reschedule");
    w.tap("Tue 1 Dec 10:00");
    w.tap("Wed 2 Dec");
    let replies = w.tap("Later times");
    assert!(
        World::titles(&replies).contains(&"14:00".to_string()),
        "after the break"
    );
    let replies = w.tap("14:00");
    assert!(
        bodies(&replies).contains("is now on Wed 2 Dec at 14:00"),
        "{}",
        bodies(&replies)
    );
    let start: DateTime<Utc> = "2026-12-02T13:00:00Z".parse().unwrap();
    assert_eq!(
        w.last_actions,
        [BotAction::RescheduleBooking {
            booking_id: booking,
            start
        }]
    );
}

#[test]
fn a_slot_taken_while_the_customer_was_choosing_offers_the_times_still_free() {
    let mut w = World::new();
    w.say("hi");
    w.tap("Haircut");
    w.tap("Tue 1 Dec");
    w.tap("10:00");
    w.say("Ana");
    w.tap("Confirm");
    // Someone else books 10:00 meanwhile.
    let day: LocalDate = "2026-12-01".parse().unwrap();
    let taken = Interval::new(
        "2026-12-01T09:00:00Z".parse().unwrap(),
        "2026-12-01T10:00:00Z".parse().unwrap(),
    )
    .unwrap();
    w.calendar
        .agendas
        .entry(day)
        .or_insert_with(|| AgendaState::new(ResourceId::default_resource(), day))
        .holds
        .push((BookingId::from_uuid(uuid::Uuid::from_u128(9)), taken));
    let replies = w.tap("Cash");
    assert!(w.last_actions.is_empty(), "nothing is booked");
    assert!(
        bodies(&replies).contains("10:00 was just taken"),
        "{}",
        bodies(&replies)
    );
    let titles = World::titles(&replies);
    assert!(!titles.contains(&"10:00".to_string()) && titles.contains(&"09:00".to_string()));
    assert_eq!(w.state.step, Step::ChoosingTime);
    // Picking another time goes straight on: the name is known.
    let replies = w.tap("09:00");
    assert!(bodies(&replies).contains("at 09:00"));
}

#[test]
fn custom_keywords_answer_whatever_the_case_and_accents() {
    let mut w = World::new();
    w.settings.keyword_replies.push(KeywordReply {
        keywords: vec!["parking".into(), "aparcamiento".into()],
        reply: "{business_name} has free parking behind the shop.".into(),
    });
    let replies = w.say("¿Hay APARCAMIENTO cerca?");
    assert_eq!(
        bodies(&replies),
        "Demo Salon has free parking behind the shop."
    );
    // In the middle of a flow the question comes back after the answer.
    w.say("hi");
    let replies = w.say("Is there PÁRKING?");
    assert!(
        bodies(&replies).contains("free parking") && bodies(&replies).contains("Which service")
    );
}

#[test]
fn out_of_hours_the_bot_says_when_it_opens_and_still_books() {
    let mut w = World::new();
    w.now = "2026-12-05T19:00:00Z".parse().unwrap(); // Saturday 20:00 in Madrid
    let replies = w.say("hi");
    assert!(
        bodies(&replies).contains("we open Mon 7 Dec 09:00"),
        "{}",
        bodies(&replies)
    );
    assert_eq!(World::titles(&replies), ["Haircut", "Beard trim"]);
    let replies = w.tap("Beard");
    assert_eq!(World::titles(&replies)[0], "Mon 7 Dec");
}

#[test]
fn on_a_dst_day_no_time_is_offered_in_the_missing_hour() {
    let mut w = World::new();
    w.settings.hours.sunday = vec![range("01:00", "05:00")];
    w.settings.rules.min_notice_minutes = 0;
    w.now = "2026-03-28T12:00:00Z".parse().unwrap(); // Saturday before the change
    w.say("hi");
    w.tap("Beard");
    let replies = w.tap("Sun 29 Mar");
    let titles = World::titles(&replies);
    assert_eq!(&titles[..5], ["01:00", "01:15", "01:30", "01:45", "03:00"]);
    assert!(titles.iter().all(|t| !t.starts_with("02:")), "{titles:?}");
    let replies = w.tap("03:00");
    assert!(bodies(&replies).contains("What name"));
    w.say("Ana");
    w.tap("Confirm");
    w.tap("Cash");
    let [BotAction::RequestBooking { start, .. }] = &w.last_actions[..] else {
        panic!()
    };
    // 03:00 CEST is 01:00 UTC.
    assert_eq!(
        *start,
        "2026-03-29T01:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
}

#[test]
fn an_idle_session_expires_and_starts_over() {
    let mut w = World::new();
    w.say("hi");
    w.tap("Haircut");
    w.now += Duration::hours(3);
    let replies = w.say("1");
    assert!(w.last_expired);
    assert!(
        bodies(&replies).contains("Welcome to Demo Salon"),
        "{}",
        bodies(&replies)
    );
    assert_eq!(w.state.step, Step::ChoosingService);
}

#[test]
fn images_and_other_media_get_a_polite_answer_and_the_question_again() {
    let mut w = World::new();
    w.say("hi");
    let replies = w.send(Inbound::Unsupported {
        message_type: "image".into(),
    });
    assert!(bodies(&replies).contains("I can only read text"));
    assert!(bodies(&replies).contains("Which service"));
}

#[test]
fn asking_for_a_person_hands_off_and_the_bot_stays_quiet_until_menu() {
    let mut w = World::new();
    w.say("hi");
    let replies = w.say("agent please");
    assert!(bodies(&replies).contains("a member of the team"));
    assert_eq!(w.last_actions, [BotAction::HandOff]);
    assert!(w.say("are you there?").is_empty());
    let replies = w.say("menu");
    assert!(bodies(&replies).contains("Welcome"));
}

#[test]
fn a_name_that_contains_a_command_word_is_still_a_name() {
    let mut w = World::new();
    w.say("hi");
    w.tap("Haircut");
    w.tap("Tue 1 Dec");
    w.tap("10:00");
    let replies = w.say("Agent Smith");
    assert!(
        bodies(&replies).contains("Shall I book it?"),
        "{}",
        bodies(&replies)
    );
    assert_eq!(w.state.customer_name.as_deref(), Some("Agent Smith"));
}

#[test]
fn optional_steps_can_be_skipped_by_configuration() {
    let mut w = World::new();
    w.settings.flow.ask_name = false;
    w.settings.flow.ask_payment = false;
    w.settings.flow.texts.confirmed =
        "¡Reservado! {service}, {date} {time}. Ref {reference}.".into();
    w.say("hi");
    w.tap("Haircut");
    w.tap("Tue 1 Dec");
    let replies = w.tap("10:00");
    assert!(
        bodies(&replies).contains("Shall I book it?"),
        "no name asked"
    );
    let replies = w.tap("Confirm");
    assert!(
        bodies(&replies).starts_with("¡Reservado! Haircut, Tue 1 Dec 10:00. Ref BK-"),
        "{}",
        bodies(&replies)
    );
    let [
        BotAction::RequestBooking {
            customer_name,
            confirm,
            payment,
            ..
        },
    ] = &w.last_actions[..]
    else {
        panic!()
    };
    assert_eq!(
        customer_name.as_deref(),
        Some("Ana WhatsApp"),
        "the profile name"
    );
    assert!(*confirm && payment.is_none());
}

#[test]
fn long_lists_paginate_within_whatsapps_ten_rows() {
    let mut w = World::new();
    w.services = (0..12)
        .map(|i| Service {
            id: ServiceId::from_uuid(uuid::Uuid::from_u128(1000 + i)),
            name: format!("Service {i}"),
            ..haircut()
        })
        .collect();
    let replies = w.say("hi");
    let titles = World::titles(&replies);
    assert_eq!(titles.len(), 9);
    assert_eq!(titles[8], "More services");
    let replies = w.tap("More services");
    assert_eq!(
        World::titles(&replies),
        ["Service 8", "Service 9", "Service 10", "Service 11"]
    );
    let replies = w.tap("Service 11");
    assert!(bodies(&replies).contains("for Service 11"));
}

#[test]
fn a_bank_transfer_booking_waits_for_payment_and_says_how_to_pay() {
    let mut w = World::new();
    w.say("hi");
    w.tap("Haircut");
    w.tap("Tue 1 Dec");
    w.tap("10:00");
    w.say("Ana");
    w.tap("Confirm");
    let replies = w.tap("Bank transfer");
    assert!(
        bodies(&replies).contains("Please transfer 25.00 EUR to: IBAN ES00 0000"),
        "{}",
        bodies(&replies)
    );
    let [BotAction::RequestBooking { confirm, .. }] = &w.last_actions[..] else {
        panic!()
    };
    assert!(!*confirm);
}

#[test]
fn hours_prices_and_my_bookings_answer_at_any_time() {
    let mut w = World::new();
    let replies = w.say("hours");
    assert!(bodies(&replies).contains("Mon: 09:00–13:00, 14:00–18:00"));
    assert!(bodies(&replies).contains("Sun: closed"));
    let replies = w.say("prices");
    assert!(bodies(&replies).contains("Haircut · 25.00 EUR · 45 min"));
    book_haircut(&mut w);
    let replies = w.say("my bookings");
    assert!(
        bodies(&replies).contains("Haircut · Tue 1 Dec 10:00"),
        "{}",
        bodies(&replies)
    );
}
