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
use crate::bot_config::{BotConfigState, BotSettings, KeywordReply, PaymentMethod, Service};
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
    /// The WhatsApp profile name Meta sends with each message.
    profile_name: Option<&'static str>,
    /// How many messages the customer sent.
    messages: usize,
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
        staff: vec![],
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
            profile_name: Some("Ana WhatsApp"),
            messages: 0,
        }
    }

    /// Another customer of the same business, seeing the same agendas.
    fn other(&self) -> Self {
        let mut other = World::new();
        other.settings = self.settings.clone();
        other.services = self.services.clone();
        other.calendar.agendas = self.calendar.agendas.clone();
        other.now = self.now;
        other.next_id = self.next_id + 1000;
        other
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
                profile_name: self.profile_name,
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
            .unwrap_or_else(|e| {
                panic!(
                    "the engine's actions fit the calendar: {e:?}\nactions: {:?}\nstate: {:?}",
                    turn.actions, self.state
                )
            });
        self.last_actions = turn.actions;
        self.now += Duration::seconds(20);
        self.messages += 1;
        turn.replies
    }

    /// What is taken on every agenda day now (what another customer would see): holds and
    /// live reservations.
    fn holds(&self) -> Vec<(BookingId, Interval)> {
        self.calendar
            .agendas
            .values()
            .flat_map(|a| a.taken(self.now))
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

/// Books Haircut on Tuesday at 10:00 (payment at the venue), asserting along the way: five
/// messages from hi, the name from the WhatsApp profile, the payment folded into the summary.
fn book_haircut(w: &mut World) -> BookingId {
    let before = w.messages;
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
    let text = bodies(&replies);
    assert!(
        text.contains("Haircut on Tue 1 Dec at 10:00 for 25.00 EUR"),
        "{text}"
    );
    assert!(text.contains("Name: Ana WhatsApp"), "{text}");
    assert!(
        text.contains("keeping this time for you for 10 minutes"),
        "{text}"
    );
    assert_eq!(
        World::titles(&replies),
        ["Pay at the venue", "Bank transfer", "Change"]
    );
    let [
        BotAction::ReserveSlot {
            booking_id: reserved,
            until,
            ..
        },
    ] = w.last_actions[..]
    else {
        panic!("expected a reservation: {:?}", w.last_actions)
    };
    assert_eq!(until, w.now - Duration::seconds(20) + Duration::minutes(10));
    let replies = w.tap("Pay at the venue");
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
    assert_eq!(*booking_id, reserved, "the booking holds its reservation");
    assert!(text.contains(reference.as_str()));
    assert_eq!(customer_name.as_deref(), Some("Ana WhatsApp"));
    assert!(*confirm, "cash bookings are confirmed at once");
    assert_eq!(
        *start,
        "2026-12-01T09:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(w.state.step, Step::Idle);
    assert_eq!(w.messages - before, 5, "hi to booked in five messages");
    assert!(
        w.calendar
            .agendas
            .values()
            .all(|a| a.reservations.is_empty())
    );
    *booking_id
}

#[test]
fn a_customer_books_from_hi_to_confirmed() {
    let mut w = World::new();
    book_haircut(&mut w);
    // The slot is gone for the next customer.
    let mut other = w.other();
    other.say("hi");
    other.tap("Haircut");
    let replies = other.tap("Tue 1 Dec");
    assert!(!World::titles(&replies).contains(&"10:00".to_string()));
}

#[test]
fn a_customer_without_a_profile_name_is_asked_and_can_change_it_at_the_summary() {
    let mut w = World::new();
    w.profile_name = None;
    w.say("hi");
    w.tap("Haircut");
    w.tap("Tue 1 Dec");
    let replies = w.tap("10:00");
    assert!(
        bodies(&replies).contains("What name"),
        "{}",
        bodies(&replies)
    );
    let replies = w.say("Ana García");
    assert!(bodies(&replies).contains("Name: Ana García"));
    w.tap("Change");
    let replies = w.tap("My name");
    assert!(bodies(&replies).contains("What name"));
    let replies = w.say("Ana G. Pérez");
    assert!(bodies(&replies).contains("Name: Ana G. Pérez"));
    w.tap("Pay at the venue");
    let [BotAction::RequestBooking { customer_name, .. }] = &w.last_actions[..] else {
        panic!("{:?}", w.last_actions)
    };
    assert_eq!(customer_name.as_deref(), Some("Ana G. Pérez"));
}

#[test]
fn a_chosen_time_is_kept_from_other_customers_until_the_hold_runs_out() {
    let mut w = World::new();
    w.say("hi");
    w.tap("Haircut");
    w.tap("Tue 1 Dec");
    w.tap("10:00");
    assert_eq!(w.holds().len(), 1, "10:00 is reserved");
    // Another customer is not offered it.
    let mut other = w.other();
    other.say("hi");
    other.tap("Haircut");
    let replies = other.tap("Tue 1 Dec");
    let titles = World::titles(&replies);
    assert!(!titles.contains(&"10:00".to_string()), "{titles:?}");
    // One who was offered it before is told at once, at the time step, and the nearest free
    // time is kept instead.
    let mut earlier = World::new();
    earlier.say("hi");
    earlier.tap("Haircut");
    earlier.tap("Tue 1 Dec");
    earlier.calendar.agendas = w.calendar.agendas.clone();
    earlier.now = w.now;
    let replies = earlier.tap("10:00");
    let text = bodies(&replies);
    assert!(
        text.contains("10:00 was just taken, so I am keeping 11:00 for you instead"),
        "{text}"
    );
    assert!(text.contains("Haircut on Tue 1 Dec at 11:00"), "{text}");
    assert!(matches!(
        earlier.last_actions[..],
        [BotAction::ReserveSlot { .. }]
    ));
    assert_eq!(earlier.state.step, Step::Confirming);
    // Once the hold has run out, the time is offered again.
    let mut later = w.other();
    later.now = w.now + Duration::minutes(10);
    later.say("hi");
    later.tap("Haircut");
    let replies = later.tap("Tue 1 Dec");
    assert!(World::titles(&replies).contains(&"10:00".to_string()));
}

#[test]
fn a_reservation_is_let_go_when_the_customer_chooses_otherwise_or_starts_over() {
    let mut w = World::new();
    w.say("hi");
    w.tap("Haircut");
    w.tap("Tue 1 Dec");
    w.tap("10:00");
    w.tap("Change");
    w.tap("Another time");
    w.tap("10:45");
    assert!(
        matches!(
            &w.last_actions[..],
            [BotAction::ReleaseSlot { .. }, BotAction::ReserveSlot { .. }]
        ),
        "{:?}",
        w.last_actions
    );
    let taken: Vec<_> = w.holds().into_iter().map(|(_, i)| i.start).collect();
    assert_eq!(
        taken,
        ["2026-12-01T09:45:00Z".parse::<DateTime<Utc>>().unwrap()]
    );
    w.say("menu");
    assert!(matches!(
        &w.last_actions[..],
        [BotAction::ReleaseSlot { .. }]
    ));
    assert!(w.holds().is_empty());
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
    w.bookings_open = false;
    let replies = w.tap("Pay at the venue");
    let text = bodies(&replies);
    assert!(text.contains("Online booking is paused"), "{text}");
    assert!(!text.contains("Booked!"), "{text}");
    assert!(
        matches!(&w.last_actions[..], [BotAction::ReleaseSlot { .. }]),
        "the time is let go, nothing is booked"
    );
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
            start,
            resource: ResourceId::default_resource(),
        }]
    );
}

/// Found by the fuzzed conversations: a time typed while moving a booking moved it, as a
/// tapped one does, where it used to hold the time for a new booking (which the booking being
/// moved itself blocked: "just taken").
#[test]
fn a_time_typed_while_rescheduling_moves_the_booking() {
    let mut w = World::new();
    let booking = book_haircut(&mut w);
    w.say("reschedule");
    w.tap("Tue 1 Dec 10:00");
    let replies = w.say("wednesday 10:30");
    assert!(
        bodies(&replies).contains("is now on Wed 2 Dec at 10:30"),
        "{}",
        bodies(&replies)
    );
    assert_eq!(
        w.last_actions,
        [BotAction::RescheduleBooking {
            booking_id: booking,
            start: "2026-12-02T09:30:00Z".parse().unwrap(),
            resource: ResourceId::default_resource(),
        }]
    );
    // Within its own time, a quarter of an hour later, on the same day.
    w.say("reschedule");
    w.tap("Wed 2 Dec 10:30");
    let replies = w.say("wednesday 10:45");
    assert!(
        bodies(&replies).contains("is now on Wed 2 Dec at 10:45"),
        "{}",
        bodies(&replies)
    );
    // Its own time again: nothing to move, and the customer hears where it is.
    w.say("reschedule");
    w.tap("Wed 2 Dec 10:45");
    let replies = w.say("wednesday 10:45");
    assert!(
        bodies(&replies).contains("is now on Wed 2 Dec at 10:45"),
        "{}",
        bodies(&replies)
    );
    assert_eq!(w.last_actions, []);
}

/// The reminder of `booking` as the customer receives it now (reply buttons: they wrote
/// today), and a tap on its button `title`.
fn tap_reminder(w: &mut World, booking: BookingId, title: &str) -> Vec<Reply> {
    let state = w
        .calendar
        .bookings
        .iter()
        .find(|s| s.booking.as_ref().is_some_and(|b| b.booking_id == booking))
        .cloned()
        .expect("the booking");
    let reminder = crate::reminders::reminder_reply(
        &w.settings,
        state.booking.as_ref().expect("booked"),
        Some(w.now),
        w.now,
    )
    .expect("a reminder within the window");
    assert!(reminder.fits_whatsapp());
    let choice = reminder
        .offered()
        .iter()
        .find(|c| c.title == title)
        .expect("the button")
        .clone();
    w.send(Inbound::ButtonReply {
        id: choice.id,
        title: choice.title,
    })
}

#[test]
fn a_reminders_buttons_confirm_move_and_cancel_the_booking_whatever_the_bot_was_doing() {
    let mut w = World::new();
    let booking = book_haircut(&mut w);
    // Booked on Monday 09:30 for Tuesday 10:00 in Madrid: reminded on Monday at 10:00 (a day
    // before) and Tuesday at 08:00 (two hours before).
    let reminders = |w: &World| {
        w.calendar.bookings[0]
            .booking
            .as_ref()
            .expect("booked")
            .reminders
            .clone()
    };
    let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    assert_eq!(
        reminders(&w),
        [at("2026-11-30T09:00:00Z"), at("2026-12-01T07:00:00Z")]
    );
    // Halfway through another booking, the customer confirms they will come.
    w.say("hi");
    w.tap("Something else");
    w.tap("Beard trim");
    let replies = tap_reminder(&mut w, booking, "Confirm");
    let text = bodies(&replies);
    assert!(
        text.starts_with("Thank you! See you on Tue 1 Dec at 10:00."),
        "{text}"
    );
    assert!(
        text.contains("Which day suits you for Beard trim?"),
        "{text}"
    );
    assert_eq!(
        w.last_actions,
        [BotAction::ConfirmAttendance {
            booking_id: booking
        }]
    );
    assert!(
        w.calendar.bookings[0]
            .booking
            .as_ref()
            .unwrap()
            .attendance_confirmed
    );

    // Reschedule: the days of its service, then a time moves it, with new reminders.
    let replies = tap_reminder(&mut w, booking, "Reschedule");
    assert!(
        bodies(&replies).contains("Which day suits you for Haircut?"),
        "{}",
        bodies(&replies)
    );
    w.tap("Wed 2 Dec");
    w.tap("10:30");
    assert_eq!(
        w.last_actions,
        [BotAction::RescheduleBooking {
            booking_id: booking,
            start: at("2026-12-02T09:30:00Z"),
            resource: ResourceId::default_resource(),
        }]
    );
    assert_eq!(
        reminders(&w),
        [at("2026-12-01T09:30:00Z"), at("2026-12-02T07:30:00Z")]
    );

    let replies = tap_reminder(&mut w, booking, "Cancel");
    assert!(
        bodies(&replies).contains("is cancelled"),
        "{}",
        bodies(&replies)
    );
    assert!(w.holds().is_empty());
    // A reminder's button after the booking is gone says what is ahead, and books nothing.
    let payload = crate::reminders::ReminderAnswer::Confirm.payload(booking);
    let replies = w.send(Inbound::ButtonReply {
        id: payload,
        title: "Confirm".into(),
    });
    assert!(bodies(&replies).contains("no upcoming booking"));
    assert!(w.last_actions.is_empty());
}

#[test]
fn a_slot_taken_after_the_hold_ran_out_offers_the_times_still_free() {
    let mut w = World::new();
    w.say("hi");
    w.tap("Haircut");
    w.tap("Tue 1 Dec");
    w.tap("10:00");
    // The customer is away past the hold, and someone else books 10:00 meanwhile.
    w.now += Duration::minutes(15);
    let day: LocalDate = "2026-12-01".parse().unwrap();
    let taken = Interval::new(
        "2026-12-01T09:00:00Z".parse().unwrap(),
        "2026-12-01T10:00:00Z".parse().unwrap(),
    )
    .unwrap();
    w.calendar
        .agendas
        .entry((ResourceId::default_resource(), day))
        .or_insert_with(|| AgendaState::new(ResourceId::default_resource(), day))
        .holds
        .push((BookingId::from_uuid(uuid::Uuid::from_u128(9)), taken));
    let replies = w.tap("Pay at the venue");
    assert!(
        !w.last_actions
            .iter()
            .any(|a| matches!(a, BotAction::RequestBooking { .. })),
        "nothing is booked"
    );
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
    w.tap("03:00");
    w.tap("Pay at the venue");
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
fn delete_my_data_asks_the_business_by_default_and_lets_a_kept_time_go() {
    let mut w = World::new();
    w.say("hi");
    w.tap("Haircut");
    w.tap("Tue 1 Dec");
    w.tap("10:00");
    assert!(!w.holds().is_empty());
    let replies = w.say("please delete my data");
    assert!(
        bodies(&replies).contains("passed your request to delete your data to Demo Salon"),
        "{}",
        bodies(&replies)
    );
    assert!(
        matches!(
            &w.last_actions[..],
            [
                BotAction::ReleaseSlot { .. },
                BotAction::RequestErasure { at_once: false }
            ]
        ),
        "{:?}",
        w.last_actions
    );
    assert!(w.holds().is_empty());
    assert_eq!(w.state.step, Step::Idle);
}

#[test]
fn delete_my_data_erases_at_once_where_the_business_chose_so_in_the_customer_s_language() {
    let mut w = World::new();
    w.settings.privacy.erasure_requests = crate::bot_config::ErasureRequests::EraseAtOnce;
    w.settings.flow.answer_in_customer_language = true;
    let replies = w.say("borrar mis datos");
    assert_eq!(
        replies.len(),
        1,
        "the confirmation is the turn's last reply"
    );
    assert!(
        bodies(&replies).contains("Demo Salon está borrando todo"),
        "{}",
        bodies(&replies)
    );
    assert_eq!(
        w.last_actions,
        [BotAction::RequestErasure { at_once: true }]
    );
}

#[test]
fn delete_my_data_while_a_person_answers_leaves_them_answering() {
    let mut w = World::new();
    w.say("hi");
    w.say("agent");
    w.say("delete my data");
    assert_eq!(
        w.last_actions,
        [BotAction::RequestErasure { at_once: false }]
    );
    assert_eq!(w.state.step, Step::HandedOff);
    // "Cancel my data" is the data, not a booking.
    let mut w = World::new();
    w.say("cancelar mis datos");
    assert_eq!(
        w.last_actions,
        [BotAction::RequestErasure { at_once: false }]
    );
}

#[test]
fn a_name_that_contains_a_command_word_is_still_a_name() {
    let mut w = World::new();
    w.profile_name = None;
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

#[test]
fn a_returning_customer_is_greeted_by_name_and_offered_their_last_service() {
    let mut w = World::new();
    book_haircut(&mut w);
    let replies = w.say("hi");
    let text = bodies(&replies);
    assert!(text.contains("Hi Ana WhatsApp! Welcome back"), "{text}");
    assert!(text.contains("book Haircut again?"), "{text}");
    assert_eq!(World::titles(&replies), ["Yes, Haircut", "Something else"]);
    let replies = w.tap("Yes, Haircut");
    assert!(bodies(&replies).contains("Which day suits you for Haircut?"));
    w.say("menu");
    w.tap("Something else");
    assert_eq!(w.state.step, Step::ChoosingService);
    assert_eq!(
        World::titles(std::slice::from_ref(w.state.prompt.as_ref().unwrap())),
        ["Haircut", "Beard trim"]
    );
}

#[test]
fn a_fully_booked_service_is_not_a_dead_end() {
    let mut w = World::new();
    w.settings.rules.horizon_days = 1;
    w.now = "2026-11-30T16:30:00Z".parse().unwrap(); // Monday 17:30: today is over
    w.settings.hours.tuesday = vec![];
    w.say("hi");
    let replies = w.tap("Haircut");
    let text = bodies(&replies);
    assert!(
        text.contains("Haircut is fully booked for the next 1 days"),
        "{text}"
    );
    assert!(text.contains("hello@demo-salon.example"), "{text}");
    assert_eq!(
        World::titles(&replies),
        ["Other services", "Join the waitlist", "Talk to us"]
    );
    let replies = w.tap("Talk to us");
    assert!(bodies(&replies).contains("a member of the team"));
    assert_eq!(w.last_actions, [BotAction::HandOff]);
}

#[test]
fn a_full_horizon_offers_the_first_free_day_past_it_when_the_business_allows() {
    let mut w = World::new();
    w.settings.rules.horizon_days = 1;
    w.settings.rules.beyond_horizon_days = 7;
    w.now = "2026-11-30T16:30:00Z".parse().unwrap(); // Monday 17:30: today is over
    w.settings.hours.tuesday = vec![];
    w.settings.hours.wednesday = vec![];
    w.say("hi");
    let replies = w.tap("Haircut");
    let text = bodies(&replies);
    assert!(
        text.contains(
            "Haircut is fully booked for the next 1 days. The first free day is Thu 3 Dec."
        ),
        "{text}"
    );
    assert_eq!(
        World::titles(&replies),
        [
            "Thu 3 Dec",
            "Other services",
            "Join the waitlist",
            "Talk to us"
        ]
    );
    let replies = w.tap("Thu 3 Dec");
    assert!(World::titles(&replies).contains(&"10:00".to_string()));
    w.tap("10:00");
    let [BotAction::ReserveSlot { start, .. }] = &w.last_actions[..] else {
        panic!("{:?}", w.last_actions)
    };
    assert_eq!(start.to_rfc3339(), "2026-12-03T09:00:00+00:00");
    // A day past the horizon is never offered while the horizon has room.
    let mut roomy = World::new();
    roomy.settings.rules.horizon_days = 1;
    roomy.settings.rules.beyond_horizon_days = 7;
    roomy.say("hi");
    let replies = roomy.tap("Haircut");
    assert!(!World::titles(&replies).contains(&"Thu 3 Dec".to_string()));

    // In the business's language, and past the horizon too the waitlist stays open.
    let mut es = World::new();
    es.settings.flow.language = crate::bot_config::Language::Es;
    es.settings.flow.texts = crate::bot_config::Texts::in_language(crate::bot_config::Language::Es);
    es.settings.rules = w.settings.rules;
    es.settings.hours = w.settings.hours.clone();
    es.now = w.now;
    es.say("hola");
    let replies = es.tap("Haircut");
    let text = bodies(&replies);
    assert!(
        text.contains("El primer día libre es el jue 3 dic."),
        "{text}"
    );
    es.tap("Lista de espera");
    assert!(matches!(
        es.last_actions[..],
        [BotAction::JoinWaitlist { .. }]
    ));
}

#[test]
fn a_reaction_is_recorded_and_not_answered() {
    let mut w = World::new();
    w.say("hi");
    let replies = w.send(Inbound::Unsupported {
        message_type: "reaction".into(),
    });
    assert!(replies.is_empty());
    assert_eq!(w.state.step, Step::ChoosingService, "the flow goes on");
}

#[test]
fn a_typed_yes_confirms_a_summary_with_one_way_to_confirm() {
    let mut w = World::new();
    w.settings.payment_methods = vec![PaymentMethod::Cash];
    w.say("hi");
    w.tap("Haircut");
    w.tap("Tue 1 Dec");
    let replies = w.tap("10:00");
    assert_eq!(World::titles(&replies), ["Confirm", "Change"]);
    let replies = w.say("Sí");
    assert!(bodies(&replies).contains("Booked!"), "{}", bodies(&replies));
    let [BotAction::RequestBooking { payment, .. }] = &w.last_actions[..] else {
        panic!()
    };
    assert_eq!(payment, &Some(PaymentMethod::Cash), "the one method");
}

#[test]
fn without_holds_the_time_is_checked_again_at_the_confirmation() {
    let mut w = World::new();
    w.settings.rules.hold_minutes = 0;
    w.say("hi");
    w.tap("Haircut");
    w.tap("Tue 1 Dec");
    let replies = w.tap("10:00");
    assert!(w.last_actions.is_empty(), "nothing reserved");
    assert!(!bodies(&replies).contains("keeping this time"));
    let mut other = w.other();
    other.say("hi");
    other.tap("Haircut");
    let replies = other.tap("Tue 1 Dec");
    assert!(World::titles(&replies).contains(&"10:00".to_string()));
    other.tap("10:00");
    other.tap("Pay at the venue");
    w.calendar.agendas = other.calendar.agendas.clone();
    let replies = w.tap("Pay at the venue");
    assert!(
        bodies(&replies).contains("10:00 was just taken"),
        "{}",
        bodies(&replies)
    );
}

#[test]
fn a_request_typed_in_full_goes_straight_to_the_summary() {
    let mut w = World::new();
    let replies = w.say("haircut tomorrow at 5pm");
    let text = bodies(&replies);
    assert!(text.contains("Welcome to Demo Salon"), "{text}");
    assert!(text.contains("Haircut on Tue 1 Dec at 17:00"), "{text}");
    assert!(matches!(
        w.last_actions[..],
        [BotAction::ReserveSlot { .. }]
    ));
    w.tap("Pay at the venue");
    assert_eq!(w.messages, 2, "two messages from hello to booked");
    assert!(matches!(
        w.last_actions[..],
        [BotAction::RequestBooking { .. }]
    ));
}

#[test]
fn a_day_or_time_typed_while_choosing_jumps_to_it_or_the_nearest_free_times() {
    let mut w = World::new();
    w.say("hi");
    w.tap("Haircut");
    let replies = w.say("friday 17:00");
    assert!(
        bodies(&replies).contains("Haircut on Fri 4 Dec at 17:00"),
        "{}",
        bodies(&replies)
    );
    w.tap("Change");
    w.tap("Another time");
    // 13:30 is the lunch break: the nearest free times, around it.
    let replies = w.say("wednesday at 13:30");
    let text = bodies(&replies);
    assert!(text.contains("13:30 is not free on Wed 2 Dec"), "{text}");
    let titles = World::titles(&replies);
    assert!(titles.contains(&"14:00".to_string()) && titles.contains(&"12:00".to_string()));
    // A typo in the service is still understood.
    let mut typo = World::new();
    typo.say("hi");
    let replies = typo.say("hiarcut");
    assert!(bodies(&replies).contains("Which day suits you for Haircut?"));
}

#[test]
fn a_day_typed_before_the_service_is_kept_for_after_it() {
    let mut w = World::new();
    w.settings.flow.answer_in_customer_language = true;
    let replies = w.say("hola, quiero una cita mañana");
    let text = bodies(&replies);
    assert!(text.contains("¡Hola! Bienvenido a Demo Salon"), "{text}");
    assert!(text.contains("¿Qué servicio quieres?"), "{text}");
    let replies = w.tap("Haircut");
    let text = bodies(&replies);
    assert!(
        text.contains("Estas horas están libres el mar 1 dic"),
        "{text}"
    );
    assert_eq!(World::titles(&replies)[0], "09:00");
    let replies = w.tap("10:00");
    let text = bodies(&replies);
    assert!(text.contains("Haircut el mar 1 dic a las 10:00"), "{text}");
    assert!(
        text.contains("Te guardo esta hora durante 10 minutos"),
        "{text}"
    );
    assert_eq!(
        World::titles(&replies),
        ["Pagar en el local", "Transferencia", "Cambiar"]
    );
    let replies = w.tap("Pagar en el local");
    assert!(
        bodies(&replies).starts_with("¡Reservado!"),
        "{}",
        bodies(&replies)
    );
}

#[test]
fn a_business_in_portuguese_speaks_portuguese_and_reads_its_dates() {
    let mut w = World::new();
    w.settings.flow.language = crate::bot_config::Language::Pt;
    w.settings.flow.texts = crate::bot_config::Texts::in_language(crate::bot_config::Language::Pt);
    let replies = w.say("oi");
    assert!(bodies(&replies).contains("Olá! Bem-vindo a Demo Salon"));
    w.tap("Haircut");
    let replies = w.say("sexta às 17h");
    let text = bodies(&replies);
    assert!(text.contains("Haircut em sex 4 dez às 17:00"), "{text}");
    let replies = w.say("horário");
    assert!(
        bodies(&replies).contains("seg: 09:00–13:00"),
        "{}",
        bodies(&replies)
    );
    assert!(bodies(&replies).contains("dom: fechado"));
}

#[test]
fn a_customer_writing_in_spanish_to_an_english_business_is_answered_in_english_unless_allowed() {
    let mut w = World::new();
    let replies = w.say("hola, quiero una cita");
    assert!(bodies(&replies).contains("Welcome to Demo Salon"));
    let mut allowed = World::new();
    allowed.settings.flow.answer_in_customer_language = true;
    let replies = allowed.say("buenas tardes, quiero una cita");
    assert!(bodies(&replies).contains("Bienvenido a Demo Salon"));
    // Spanish for this conversation, also in the next session.
    allowed.now += Duration::hours(3);
    let replies = allowed.say("1");
    assert!(
        bodies(&replies).contains("Bienvenido"),
        "{}",
        bodies(&replies)
    );
}

/// Ana works Monday to Saturday, 09:00-13:00 and 14:00-18:00; Luis Tuesday to Saturday
/// afternoons, 14:00-18:00, and is off on Wednesday 2 December. Both cut hair; only Luis trims
/// beards.
fn salon_with_staff() -> World {
    use crate::bot_config::{Closure, OpeningHours, StaffMember};
    let mut w = World::new();
    let days = |ranges: Vec<crate::bot_config::TimeRange>, monday: bool| OpeningHours {
        monday: if monday { ranges.clone() } else { vec![] },
        tuesday: ranges.clone(),
        wednesday: ranges.clone(),
        thursday: ranges.clone(),
        friday: ranges.clone(),
        saturday: ranges,
        sunday: vec![],
    };
    w.settings.staff = vec![
        StaffMember {
            id: ResourceId::parse("ana").unwrap(),
            name: "Ana".into(),
            hours: Some(days(
                vec![range("09:00", "13:00"), range("14:00", "18:00")],
                true,
            )),
            time_off: vec![],
        },
        StaffMember {
            id: ResourceId::parse("luis").unwrap(),
            name: "Luis".into(),
            hours: Some(days(vec![range("14:00", "18:00")], false)),
            time_off: vec![Closure {
                from: "2026-12-02".parse().unwrap(),
                to: "2026-12-02".parse().unwrap(),
                reason: None,
            }],
        },
    ];
    w.services[1].staff = vec![ResourceId::parse("luis").unwrap()];
    w.profile_name = Some("Ana WhatsApp");
    w
}

/// The resource the last turn's booking went on.
fn booked_with(w: &World) -> ResourceId {
    w.last_actions
        .iter()
        .find_map(|a| match a {
            BotAction::RequestBooking { resource, .. } => Some(resource.clone()),
            _ => None,
        })
        .expect("a booking")
}

#[test]
fn the_customer_picks_a_person_or_anyone_and_each_works_their_own_hours() {
    let mut w = salon_with_staff();
    w.say("hi");
    let replies = w.tap("Haircut");
    assert!(
        bodies(&replies).contains("Who would you like for Haircut?"),
        "{}",
        bodies(&replies)
    );
    assert_eq!(World::titles(&replies), ["Anyone", "Ana", "Luis"]);
    // Luis: not on Monday (no hours) nor Wednesday (day off); afternoons only.
    let replies = w.tap("Luis");
    let days = World::titles(&replies);
    assert_eq!(days[0], "Tue 1 Dec", "{days:?}");
    assert!(
        !days
            .iter()
            .any(|d| d.contains("Mon 30 Nov") || d.contains("Wed 2 Dec"))
    );
    let replies = w.tap("Tue 1 Dec");
    assert_eq!(World::titles(&replies)[0], "14:00");
    let replies = w.tap("14:00");
    assert!(
        bodies(&replies).contains("With Luis."),
        "{}",
        bodies(&replies)
    );
    assert!(matches!(
        &w.last_actions[..],
        [BotAction::ReserveSlot { resource, .. }] if resource.as_str() == "luis"
    ));
    let replies = w.tap("Pay at the venue");
    assert!(
        bodies(&replies).contains("With Luis."),
        "{}",
        bodies(&replies)
    );
    assert_eq!(booked_with(&w).as_str(), "luis");

    // Anyone at 16:00 on Tuesday: both are free, Ana has fewer appointments that day.
    let mut second = w.other();
    second.say("hi");
    second.tap("Haircut");
    second.tap("Anyone");
    let replies = second.tap("Tue 1 Dec");
    assert_eq!(
        World::titles(&replies)[0],
        "09:00",
        "Ana's morning comes first"
    );
    second.say("16:00");
    second.tap("Pay at the venue");
    assert_eq!(booked_with(&second).as_str(), "ana");
    // The next one at 16:00 gets Luis, who is still free then.
    let mut third = second.other();
    third.say("hi");
    third.tap("Haircut");
    third.tap("Anyone");
    third.tap("Tue 1 Dec");
    let replies = third.say("16:00");
    assert!(
        bodies(&replies).contains("With Luis."),
        "{}",
        bodies(&replies)
    );
    third.tap("Pay at the venue");
    assert_eq!(booked_with(&third).as_str(), "luis");
    // A fourth finds 16:00 taken with both.
    let mut fourth = third.other();
    fourth.say("hi");
    fourth.tap("Haircut");
    fourth.tap("Anyone");
    fourth.tap("Tue 1 Dec");
    let replies = fourth.say("16:00");
    assert!(
        bodies(&replies).contains("16:00 is not free on Tue 1 Dec"),
        "{}",
        bodies(&replies)
    );
}

#[test]
fn a_service_only_one_person_does_asks_no_one_and_a_typed_name_is_understood() {
    let mut w = salon_with_staff();
    w.say("hi");
    let replies = w.tap("Beard trim");
    assert!(
        bodies(&replies).contains("Which day suits you for Beard trim?"),
        "no question of who: {}",
        bodies(&replies)
    );
    assert_eq!(World::titles(&replies)[0], "Tue 1 Dec");
    // "haircut with ana tomorrow": the person, the service and the day at once.
    let mut typed = w.other();
    let replies = typed.say("haircut with ana tomorrow");
    let text = bodies(&replies);
    assert!(text.contains("free on Tue 1 Dec"), "{text}");
    assert_eq!(World::titles(&replies)[0], "09:00");
}

#[test]
fn a_full_calendar_offers_the_waitlist_and_a_freed_time_is_booked_from_its_offer() {
    let mut w = World::new();
    w.settings.rules.horizon_days = 1;
    // Monday 30 November and Tuesday 1 December are fully booked for a haircut.
    for (day, open, close) in [
        ("2026-11-30", "08:00", "17:00"),
        ("2026-12-01", "08:00", "17:00"),
    ] {
        let day: LocalDate = day.parse().unwrap();
        let full = Interval::new(
            format!("{day}T{open}:00Z").parse().unwrap(),
            format!("{day}T{close}:00Z").parse().unwrap(),
        )
        .unwrap();
        w.calendar
            .agendas
            .entry((ResourceId::default_resource(), day))
            .or_insert_with(|| AgendaState::new(ResourceId::default_resource(), day))
            .holds
            .push((BookingId::from_uuid(uuid::Uuid::from_u128(9)), full));
    }
    w.say("hi");
    let replies = w.tap("Haircut");
    assert_eq!(
        World::titles(&replies),
        ["Other services", "Join the waitlist", "Talk to us"]
    );
    let replies = w.tap("Join the waitlist");
    assert!(
        bodies(&replies).contains("You are on the waitlist for Haircut"),
        "{}",
        bodies(&replies)
    );
    assert_eq!(
        w.last_actions,
        [BotAction::JoinWaitlist {
            service_id: haircut().id
        }]
    );
    assert_eq!(w.state.step, Step::Idle);

    // Monday frees up (a cancellation): the offer's Book it keeps 14:00 for the customer.
    let monday: LocalDate = "2026-11-30".parse().unwrap();
    let agenda = w
        .calendar
        .agendas
        .get_mut(&(ResourceId::default_resource(), monday))
        .unwrap();
    agenda.holds.clear();
    let freed: DateTime<Utc> = "2026-11-30T13:00:00Z".parse().unwrap();
    let offer = crate::waitlist::offer_reply(&w.settings, &haircut(), freed, Some(w.now), w.now);
    let take = offer.offered()[0].clone();
    let replies = w.send(Inbound::ButtonReply {
        id: take.id,
        title: take.title,
    });
    let text = bodies(&replies);
    assert!(
        text.contains("Haircut on Mon 30 Nov at 14:00"),
        "straight to the summary: {text}"
    );
    assert!(matches!(
        &w.last_actions[..],
        [BotAction::ReserveSlot { start, .. }] if *start == freed
    ));
    // No thanks, from another customer: off the waitlist.
    let mut other = w.other();
    let leave = offer.offered()[1].clone();
    let replies = other.send(Inbound::ButtonReply {
        id: leave.id,
        title: leave.title,
    });
    assert!(bodies(&replies).contains("off the waitlist"));
    assert_eq!(
        other.last_actions,
        [BotAction::LeaveWaitlist {
            service_id: haircut().id
        }]
    );
}

/// What a customer may do next in the fuzzed conversations below.
#[derive(Debug, Clone)]
enum Move {
    /// Types anything: a word the bot knows, or any text at all.
    Say(String),
    /// Taps the n-th choice offered (modulo how many there are), if any.
    Tap(usize),
    /// Sends a button or list reply the bot never offered (an old one, a forged one).
    Forged {
        id: String,
        title: String,
        list: bool,
    },
    /// Sends an image, a reaction, a location...
    Unsupported(String),
    /// Comes back later.
    Wait(i64),
}

fn moves() -> impl proptest::strategy::Strategy<Value = Move> {
    use proptest::prelude::*;
    let words = prop::sample::select(vec![
        "hi",
        "book",
        "cancel",
        "my bookings",
        "agent",
        "menu",
        "prices",
        "hours",
        "yes",
        "no",
        "1",
        "2",
        "9",
        "tomorrow",
        "friday 5pm",
        "10:00",
        "25:99",
        "hola",
        "olá",
        "Ana",
        "",
        " ",
        "\u{0}",
        "🙂",
        "reschedule",
        "waitlist",
    ])
    .prop_map(str::to_owned);
    let ids = prop::sample::select(vec![
        "svc:0",
        "day:2026-12-01",
        "time:2026-12-01T10:00",
        "remind:cancel:b1",
        "remind:ok:x",
        "offer:take:00000000-0000-0000-0000-000000000008",
        "pay:cash",
        "confirm",
        "",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        4 => words.prop_map(Move::Say),
        2 => any::<String>().prop_map(Move::Say),
        4 => (0usize..12).prop_map(Move::Tap),
        1 => (prop_oneof![ids, any::<String>()], any::<String>(), any::<bool>())
            .prop_map(|(id, title, list)| Move::Forged { id, title, list }),
        1 => prop::sample::select(vec!["image", "reaction", "location", "sticker", "system"])
            .prop_map(|t| Move::Unsupported(t.to_owned())),
        1 => (1i64..3000).prop_map(Move::Wait),
    ]
}

// proptest reads PROPTEST_CASES itself (`just fuzz` sets it); 256 cases otherwise.
proptest::proptest! {
    /// Any conversation at all, typed, tapped, forged or late: the engine never panics, every
    /// reply fits WhatsApp, every action it asks for fits the calendar (both checked by
    /// `World::send`), and a customer who writes to a bot that is answering always hears back.
    #[test]
    fn any_conversation_is_answered_and_stays_within_the_calendar(
        script in proptest::collection::vec(moves(), 1..25),
    ) {
        let mut w = World::new();
        for step in script {
            let answering = w.state.step != Step::HandedOff;
            let (replies, expects) = match step {
                Move::Say(text) => {
                    let quiet = text.trim().is_empty();
                    (w.say(&text), !quiet)
                }
                Move::Tap(n) => {
                    let Some(prompt) = w.state.prompt.clone() else { continue };
                    let offered = prompt.offered();
                    if offered.is_empty() {
                        continue;
                    }
                    let choice = offered[n % offered.len()].clone();
                    let inbound = match prompt {
                        Reply::Buttons { .. } => Inbound::ButtonReply { id: choice.id, title: choice.title },
                        _ => Inbound::ListReply { id: choice.id, title: choice.title },
                    };
                    (w.send(inbound), true)
                }
                Move::Forged { id, title, list } => {
                    let inbound = if list {
                        Inbound::ListReply { id, title }
                    } else {
                        Inbound::ButtonReply { id, title }
                    };
                    (w.send(inbound), true)
                }
                Move::Unsupported(message_type) => {
                    let expects = !matches!(message_type.as_str(), "reaction" | "system");
                    (w.send(Inbound::Unsupported { message_type }), expects)
                }
                Move::Wait(minutes) => {
                    w.now += Duration::minutes(minutes);
                    continue;
                }
            };
            proptest::prop_assert!(
                !(answering && expects && replies.is_empty()),
                "silence at {:?}", w.state
            );
        }
    }
}
