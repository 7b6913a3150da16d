//! The bot's conversation engine: `step(context, calendar, state, input) -> Turn`.
//!
//! Pure. The tenant's configuration says what to say and which steps to take; the calendar
//! gives the agenda and the customer's bookings as they stand; the input carries the message,
//! the time and the id a new booking would get. The turn says the new state, the replies and
//! the actions (book, cancel, reschedule, hand off) that the command side carries out together
//! with the conversation's events. If an action then loses a race (the slot was taken), the
//! command side reloads the calendar and steps again: the engine then sees the slot taken and
//! offers other times.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::agenda::Interval;
use crate::availability::{Slot, free_slots_within, is_open_at, next_opening};
use crate::booking::{BookingStatus, booking_reference};
use crate::bot::i18n::{self, Labels};
use crate::bot::message::{Choice, Inbound, Reply, contains_words, normalize, render};
use crate::bot::understand::{self, Language};
use crate::bot_config::{
    BotSettings, ErasureRequests, PaymentMethod, Service, StaffMember, Texts, TimeRange,
    resource_of,
};
use crate::ids::{BookingId, ResourceId, ServiceId};
use crate::reminders::ReminderAnswer;
use crate::scheduling::occupied;
use crate::values::LocalDate;
use crate::waitlist::OfferAnswer;

/// What the engine knows of the business.
pub struct BotContext<'a> {
    pub business_name: &'a str,
    /// How customers reach the business other than here (`{contact}` in the texts).
    pub contact: &'a str,
    pub settings: &'a BotSettings,
    /// Active services, in the order the business lists them.
    pub services: &'a [Service],
    /// Whether the business's plan takes a new booking now. When not, the bot says online
    /// booking is paused and how to reach the business; customers can still see, cancel and
    /// move the bookings they have.
    pub bookings_open: bool,
}

/// A booking of this customer, as the engine needs to show and act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingView {
    pub booking_id: BookingId,
    pub service_id: ServiceId,
    pub service_name: String,
    pub appointment: Interval,
    pub buffer_minutes: u32,
    pub status: BookingStatus,
    pub resource: ResourceId,
}

/// The write model's view of time that matters to the conversation. Implemented by the command
/// side over agenda and booking streams it has loaded.
pub trait Calendar {
    /// What is taken at `now` on a resource's agenda of a local date, by booking (bookings'
    /// holds and live reservations).
    fn taken(
        &self,
        resource: &ResourceId,
        date: LocalDate,
        now: DateTime<Utc>,
    ) -> Vec<(BookingId, Interval)>;
    /// This customer's bookings.
    fn bookings(&self) -> Vec<BookingView>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    #[default]
    Idle,
    ChoosingService,
    ChoosingDay,
    ChoosingTime,
    AskingName,
    Confirming,
    ChoosingPayment,
    /// At the summary, the customer asked to change something: the time, the service or the
    /// name.
    ChoosingChange,
    /// Who the appointment is with (a member of the staff, or anyone).
    ChoosingStaff,
    ChoosingBookingToCancel,
    ChoosingBookingToReschedule,
    HandedOff,
}

/// The conversation's memory between messages.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BotState {
    pub step: Step,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<LocalDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentMethod>,
    /// The booking being rescheduled, if that is what the customer is doing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescheduling: Option<BookingId>,
    /// The reservation of the chosen time (`start`), under the id the booking will have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<BookingId>,
    /// A time of day the customer typed before a service was chosen ("tomorrow at 5pm").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_time: Option<NaiveTime>,
    /// The language the customer writes in, when it is one the bot speaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
    /// Who the customer wants the appointment with, once asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<StaffPick>,
    /// Whose agenda the chosen time (`start`) is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceId>,
    /// The last question asked, to map typed answers ("2", "Haircut") to its choices and to
    /// ask again when an answer is not understood.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Reply>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<DateTime<Utc>>,
}

/// Who the customer wants an appointment with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaffPick {
    /// Whoever is free (the engine chooses fairly: the least busy that day).
    Anyone,
    Member(ResourceId),
}

#[derive(Clone, Copy)]
pub struct Input<'a> {
    pub inbound: &'a Inbound,
    /// The WhatsApp profile name, used when the flow does not ask for a name.
    pub profile_name: Option<&'a str>,
    pub now: DateTime<Utc>,
    /// The id a booking made in this turn gets (derived from the message id by the caller, so
    /// a redelivered message books nothing twice).
    pub new_booking_id: BookingId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum BotAction {
    RequestBooking {
        booking_id: BookingId,
        reference: String,
        service_id: ServiceId,
        start: DateTime<Utc>,
        #[serde(default = "ResourceId::default_resource")]
        resource: ResourceId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payment: Option<PaymentMethod>,
        /// Confirmed at once (no payment to wait for).
        confirm: bool,
    },
    CancelBooking {
        booking_id: BookingId,
    },
    RescheduleBooking {
        booking_id: BookingId,
        start: DateTime<Utc>,
        #[serde(default = "ResourceId::default_resource")]
        resource: ResourceId,
    },
    /// The customer will come (a reminder's Confirm).
    ConfirmAttendance {
        booking_id: BookingId,
    },
    /// Nothing was free: the customer waits for a time of the service to free up.
    JoinWaitlist {
        service_id: ServiceId,
    },
    /// The customer no longer waits for the service.
    LeaveWaitlist {
        service_id: ServiceId,
    },
    /// Keep the chosen time for the customer until `until`, under the id the booking will
    /// have (the agenda decides whether it is still free).
    ReserveSlot {
        booking_id: BookingId,
        service_id: ServiceId,
        start: DateTime<Utc>,
        until: DateTime<Utc>,
        #[serde(default = "ResourceId::default_resource")]
        resource: ResourceId,
    },
    /// Let a reservation go (the customer chose otherwise or started over).
    ReleaseSlot {
        booking_id: BookingId,
        start: DateTime<Utc>,
        #[serde(default = "ResourceId::default_resource")]
        resource: ResourceId,
    },
    HandOff,
    /// The customer asked to have their data deleted: erased once this turn's last reply (the
    /// confirmation) has gone when `at_once`, else the business is asked.
    RequestErasure {
        at_once: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub state: BotState,
    pub replies: Vec<Reply>,
    pub actions: Vec<BotAction>,
    /// The previous session had expired and was started over.
    pub expired: bool,
}

const PAGE: usize = 8;

/// A typed yes, in the languages the bot speaks.
const YES: &[&str] = &[
    "yes", "y", "ok", "okay", "si", "sim", "vale", "claro", "dale",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Global {
    Menu,
    Cancel,
    Reschedule,
    MyBookings,
    Hours,
    Prices,
    Agent,
    DeleteMyData,
}

const GLOBALS: &[(Global, &[&str])] = &[
    (
        Global::Menu,
        &[
            "menu", "start", "restart", "hi", "hello", "hola", "inicio", "oi", "ola", "inicio",
        ],
    ),
    // Before "cancel": "cancelar mis datos" asks for the data to go, not a booking.
    (
        Global::DeleteMyData,
        &[
            "delete my data",
            "erase my data",
            "remove my data",
            "delete my details",
            "delete my information",
            "forget me",
            "borrar mis datos",
            "borra mis datos",
            "eliminar mis datos",
            "elimina mis datos",
            "cancelar mis datos",
            "apagar os meus dados",
            "apagar meus dados",
            "apaguem os meus dados",
            "eliminar os meus dados",
        ],
    ),
    (Global::Cancel, &["cancel", "cancel booking", "cancelar"]),
    (
        Global::Reschedule,
        &[
            "reschedule",
            "change booking",
            "reprogramar",
            "cambiar cita",
            "remarcar",
        ],
    ),
    (
        Global::MyBookings,
        &[
            "my bookings",
            "bookings",
            "mis citas",
            "mis reservas",
            "minhas marcacoes",
        ],
    ),
    (
        Global::Hours,
        &["hours", "opening hours", "horario", "horarios"],
    ),
    (
        Global::Prices,
        &["prices", "price list", "precios", "precos"],
    ),
    (
        Global::Agent,
        &[
            "agent",
            "human",
            "person",
            "agente",
            "persona",
            "atendente",
            "pessoa",
        ],
    ),
];

pub fn step(
    ctx: &BotContext<'_>,
    calendar: &dyn Calendar,
    state: &BotState,
    input: Input<'_>,
) -> Turn {
    let timeout = Duration::minutes(i64::from(ctx.settings.flow.session_timeout_minutes));
    let expired = state.step != Step::Idle
        && state
            .last_activity
            .is_some_and(|last| input.now - last > timeout);
    let mut engine = Engine {
        ctx,
        calendar,
        now: input.now,
        new_booking_id: input.new_booking_id,
        profile_name: input.profile_name,
        state: state.clone(),
        replies: Vec::new(),
        lead: None,
        actions: Vec::new(),
    };
    if expired {
        // A stale session must not answer with the old flow: start over, keep who the
        // customer is, let a kept time go.
        engine.finish();
    }
    engine.handle(input.inbound);
    engine.state.last_activity = Some(input.now);
    Turn {
        state: engine.state,
        replies: engine.replies,
        actions: engine.actions,
        expired,
    }
}

struct Engine<'a> {
    ctx: &'a BotContext<'a>,
    calendar: &'a dyn Calendar,
    now: DateTime<Utc>,
    new_booking_id: BookingId,
    profile_name: Option<&'a str>,
    state: BotState,
    replies: Vec<Reply>,
    /// Said at the head of the next message (so it arrives with the question it leads to).
    lead: Option<String>,
    actions: Vec<BotAction>,
}

impl Engine<'_> {
    /// The language this customer is answered in.
    fn lang(&self) -> Language {
        let flow = &self.ctx.settings.flow;
        match self.state.language {
            Some(language) if flow.answer_in_customer_language => language,
            _ => flow.language,
        }
    }

    /// The business's texts, or the defaults of the customer's language.
    fn texts(&self) -> &Texts {
        let flow = &self.ctx.settings.flow;
        if self.lang() == flow.language {
            &flow.texts
        } else {
            i18n::default_texts(self.lang())
        }
    }

    fn labels(&self) -> &'static Labels {
        i18n::labels(self.lang())
    }

    fn handle(&mut self, inbound: &Inbound) {
        let (id, text) = match inbound {
            Inbound::Unsupported { message_type } => {
                // A reaction or a system notice is not a message to answer.
                if self.state.step == Step::HandedOff || !expects_answer(message_type) {
                    return;
                }
                self.say(&self.texts().unsupported_message.clone(), &[]);
                self.ask_again_or_start();
                return;
            }
            Inbound::Text { body } => (None, body.as_str()),
            Inbound::ButtonReply { id, title } | Inbound::ListReply { id, title } => {
                (Some(id.clone()), title.as_str())
            }
        };
        // A reminder's button acts on its booking, whatever the conversation was doing.
        if let Some((answer, booking_id)) = id.as_deref().and_then(ReminderAnswer::of) {
            return self.on_reminder(answer, booking_id);
        }
        // So does an offer of a freed time to a customer on the waitlist.
        if let Some((answer, service_id)) = id.as_deref().and_then(OfferAnswer::of) {
            return self.on_offer(answer, service_id);
        }

        if id.is_none() {
            // A conversation (re)starting in another language the bot speaks goes on in it.
            if matches!(self.state.step, Step::Idle | Step::ChoosingService)
                && let Some(language) = understand::language_of(text)
            {
                self.state.language = Some(language);
            }
            if let Some(global) = self.global_command(text) {
                if global == Global::Menu {
                    return self.start_with(Some(text));
                }
                return self.run_global(global);
            }
            if self.state.step == Step::HandedOff {
                return; // a person is answering; the bot stays quiet until "menu"
            }
            if let Some(reply) = self.keyword_reply(text) {
                self.replies.push(Reply::text(reply));
                if self.state.step != Step::Idle {
                    self.repeat_prompt();
                }
                return;
            }
        }
        // A day or a time typed while choosing ("friday 5pm") goes there, before it is read
        // as one of the choices ("Haircut" in "haircut tomorrow").
        if id.is_none()
            && matches!(
                self.state.step,
                Step::ChoosingService | Step::ChoosingDay | Step::ChoosingTime
            )
            && !understand::when(text, self.local_date(self.now)).is_empty()
            && self.jump(text)
        {
            return;
        }
        let id = id.or_else(|| self.typed_choice(text));

        match self.state.step {
            Step::Idle | Step::HandedOff => self.start_with(Some(text)),
            Step::AskingName => self.on_name(text),
            step => match id {
                Some(id) => self.on_choice(step, &id),
                None if matches!(
                    step,
                    Step::ChoosingService | Step::ChoosingDay | Step::ChoosingTime
                ) && self.jump(text) => {}
                None => self.not_understood(),
            },
        }
    }

    // ---- commands the customer can type at any point ----

    fn global_command(&self, text: &str) -> Option<Global> {
        let normalized = normalize(text);
        let words = normalized.split(' ').count();
        GLOBALS.iter().find_map(|(global, phrases)| {
            let hit = phrases.iter().any(|p| {
                normalized == *p
                    // A short message mentioning a command ("cancel my booking please") is
                    // that command, except while asking for a name ("Agent Smith").
                    || (self.state.step != Step::AskingName && words <= 5 && contains_words(&normalized, p))
            });
            hit.then_some(*global)
        })
    }

    fn run_global(&mut self, global: Global) {
        match global {
            Global::Menu => self.start(),
            Global::Cancel => self.offer_own_bookings(Step::ChoosingBookingToCancel),
            Global::Reschedule => self.offer_own_bookings(Step::ChoosingBookingToReschedule),
            Global::MyBookings => {
                let upcoming = self.upcoming_bookings();
                if upcoming.is_empty() {
                    self.say(&self.texts().nothing_to_cancel.clone(), &[]);
                } else {
                    let lines: Vec<String> = upcoming
                        .iter()
                        .map(|b| {
                            format!(
                                "{} · {} · {} {}",
                                booking_reference(b.booking_id),
                                b.service_name,
                                self.date_label(self.local_date(b.appointment.start)),
                                self.time_label(b.appointment.start)
                            )
                        })
                        .collect();
                    self.replies.push(Reply::text(format!(
                        "{}\n{}",
                        self.texts().my_bookings,
                        lines.join("\n")
                    )));
                }
                self.repeat_prompt_if_busy();
            }
            Global::Hours => {
                let hours = self.hours_text();
                self.say(&self.texts().hours.clone(), &[("hours", &hours)]);
                self.repeat_prompt_if_busy();
            }
            Global::Prices => {
                let lines: Vec<String> = self
                    .ctx
                    .services
                    .iter()
                    .map(|s| format!("{} · {} · {} min", s.name, s.price, s.duration.minutes()))
                    .collect();
                self.replies.push(Reply::text(format!(
                    "{}\n{}",
                    self.texts().prices,
                    lines.join("\n")
                )));
                self.repeat_prompt_if_busy();
            }
            Global::Agent => {
                self.say(&self.texts().handoff.clone(), &[]);
                self.actions.push(BotAction::HandOff);
                self.state.step = Step::HandedOff;
                self.state.prompt = None;
            }
            Global::DeleteMyData => {
                // Whatever the customer was doing ends here (a kept time is let go); a person
                // who was answering them still is.
                let handed_off = self.state.step == Step::HandedOff;
                self.finish();
                if handed_off {
                    self.state.step = Step::HandedOff;
                }
                let at_once =
                    self.ctx.settings.privacy.erasure_requests == ErasureRequests::EraseAtOnce;
                let text = if at_once {
                    self.texts().erasing.clone()
                } else {
                    self.texts().erasure_requested.clone()
                };
                self.say(&text, &[]);
                self.actions.push(BotAction::RequestErasure { at_once });
            }
        }
    }

    fn keyword_reply(&self, text: &str) -> Option<String> {
        self.ctx
            .settings
            .keyword_replies
            .iter()
            .find(|k| k.keywords.iter().any(|kw| contains_words(text, kw)))
            .map(|k| self.fill(&k.reply, &[]))
    }

    // ---- the booking flow ----

    fn start(&mut self) {
        self.start_with(None);
    }

    /// Greets and offers the services, or, when `text` already says what the customer wants
    /// ("haircut tomorrow at 5pm"), goes straight there.
    fn start_with(&mut self, text: Option<&str>) {
        self.finish();
        let greeting = if self.state.customer_name.is_some() {
            self.texts().welcome_back.clone()
        } else {
            self.texts().greeting.clone()
        };
        self.say(&greeting, &[]);
        if !self.ctx.bookings_open {
            return self.say(&self.texts().bookings_paused.clone(), &[]);
        }
        if !is_open_at(self.ctx.settings, self.now)
            && let Some(opens) = next_opening(self.ctx.settings, self.now, 14)
        {
            let opens = format!(
                "{} {}",
                self.date_label(opens.date_naive()),
                opens.format("%H:%M")
            );
            self.say(&self.texts().closed_now.clone(), &[("opens", &opens)]);
        }
        if text.is_some_and(|t| self.jump(t)) {
            return;
        }
        self.offer_services();
    }

    /// Acts on a service, a day or a time the customer typed: the service is chosen, a day's
    /// free times are offered, a time is kept when free or the nearest free ones offered.
    /// False when the text names none of these.
    fn jump(&mut self, text: &str) -> bool {
        let names: Vec<&str> = self.ctx.services.iter().map(|s| s.name.as_str()).collect();
        let service = understand::named(text, &names)
            .and_then(|name| self.ctx.services.iter().find(|s| s.name == name))
            .map(|s| s.id);
        let today = self.local_date(self.now);
        let horizon = today + Duration::days(i64::from(self.ctx.settings.rules.horizon_days));
        let when = understand::when(text, today);
        let date = when.date.filter(|d| *d <= horizon);
        let staff_names: Vec<&str> = self
            .ctx
            .settings
            .staff
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        let member = understand::named(text, &staff_names)
            .and_then(|name| self.ctx.settings.staff.iter().find(|m| m.name == name))
            .map(|m| m.id.clone());
        if service.is_none() && date.is_none() && when.time.is_none() && member.is_none() {
            return false;
        }
        if self.state.rescheduling.is_none()
            && let Some(member) = member
        {
            self.state.with = Some(StaffPick::Member(member));
        }
        if self.state.rescheduling.is_none()
            && let Some(service) = service
        {
            self.state.service = Some(service);
        }
        if let Some(date) = date {
            self.state.date = Some(date);
        }
        if when.time.is_some() {
            self.state.asked_time = when.time;
        }
        if self.state.service.is_none() {
            // A day or a time without a service: remembered for when one is chosen.
            self.list_services(0);
            return true;
        }
        self.after_service();
        true
    }

    /// The service is known: the day asked for (or the first day with the time asked for),
    /// else the days.
    fn after_service(&mut self) {
        if self.state.with.is_none()
            && self.state.rescheduling.is_none()
            && self
                .service()
                .is_some_and(|s| self.ctx.settings.staff_for(s).len() > 1)
        {
            return self.offer_staff();
        }
        let time = self.state.asked_time.take();
        let date = self.state.date.or_else(|| {
            let time = time?;
            self.bookable_days().find(|d| {
                self.slots_on(*d)
                    .iter()
                    .any(|s| s.local_start.time() == time)
            })
        });
        match (date, time) {
            (Some(date), Some(time)) => {
                self.state.date = Some(date);
                self.offer_near(date, time);
            }
            (Some(date), None) => {
                self.state.date = Some(date);
                self.offer_times(0, None);
            }
            (None, _) => self.offer_days(0),
        }
    }

    /// `time` on `date`: kept when free, else the free times nearest to it.
    fn offer_near(&mut self, date: LocalDate, time: NaiveTime) {
        let slots = self.slots_on(date);
        if let Some(slot) = slots.iter().find(|s| s.local_start.time() == time) {
            return self.take_time(slot.appointment.start);
        }
        if slots.is_empty() {
            return self.offer_times(0, None);
        }
        let mut nearest = slots.clone();
        nearest.sort_by_key(|s| (s.local_start.time() - time).num_seconds().abs());
        nearest.truncate(PAGE);
        nearest.sort_by_key(|s| s.appointment.start);
        let mut choices: Vec<Choice> = nearest
            .iter()
            .map(|s| Choice {
                id: format!("time:{}", s.appointment.start.timestamp()),
                title: s.local_start.format("%H:%M").to_string(),
                description: None,
            })
            .collect();
        choices.push(more("day:again".into(), self.labels().another_day));
        let body = self.fill(
            &self.texts().nearest_times,
            &[
                ("time", &time.format("%H:%M").to_string()),
                ("date", &self.date_label(date)),
            ],
        );
        self.ask(Step::ChoosingTime, &body, self.labels().times, choices);
    }

    /// The services; a returning customer is first offered the service they booked last.
    fn offer_services(&mut self) {
        let last = self
            .calendar
            .bookings()
            .into_iter()
            .max_by_key(|b| b.appointment.start)
            .and_then(|b| self.ctx.services.iter().find(|s| s.id == b.service_id));
        let Some(last) = last else {
            return self.list_services(0);
        };
        let body = self.fill(&self.texts().book_again, &[("service", &last.name)]);
        let choices = vec![
            more(
                format!("svc:{}", last.id),
                &render(self.labels().yes_service, &[("service", &last.name)]),
            ),
            more("svc:more:0".into(), self.labels().something_else),
        ];
        self.ask(
            Step::ChoosingService,
            &body,
            self.labels().services,
            choices,
        );
    }

    fn list_services(&mut self, page: usize) {
        let services = self.ctx.services;
        if services.is_empty() {
            self.say(&self.texts().handoff.clone(), &[]);
            self.actions.push(BotAction::HandOff);
            self.state.step = Step::HandedOff;
            return;
        }
        let mut choices: Vec<Choice> = services
            .iter()
            .skip(page * PAGE)
            .take(PAGE)
            .map(|s| Choice {
                id: format!("svc:{}", s.id),
                title: s.name.clone(),
                description: Some(format!("{} · {} min", s.price, s.duration.minutes())),
            })
            .collect();
        if services.len() > (page + 1) * PAGE {
            choices.push(more(
                format!("svc:more:{}", page + 1),
                self.labels().more_services,
            ));
        }
        self.ask(
            Step::ChoosingService,
            &self.texts().choose_service.clone(),
            self.labels().services,
            choices,
        );
    }

    /// Who the appointment should be with: anyone (first), or a member who can do the service.
    fn offer_staff(&mut self) {
        let Some(service) = self.service().cloned() else {
            return self.start();
        };
        let mut choices = vec![more("staff:any".into(), self.labels().anyone)];
        choices.extend(
            self.ctx
                .settings
                .staff_for(&service)
                .into_iter()
                .flatten()
                .map(|m| more(format!("staff:{}", m.id), &m.name)),
        );
        let body = self.fill(&self.texts().choose_staff, &[("service", &service.name)]);
        self.ask(Step::ChoosingStaff, &body, self.labels().staff, choices);
    }

    fn on_choice(&mut self, step: Step, id: &str) {
        match (step, id.split_once(':')) {
            (Step::ChoosingStaff, Some(("staff", rest))) => {
                let pick = if rest == "any" {
                    Some(StaffPick::Anyone)
                } else {
                    self.ctx
                        .settings
                        .staff
                        .iter()
                        .find(|m| m.id.as_str() == rest)
                        .map(|m| StaffPick::Member(m.id.clone()))
                };
                match pick {
                    Some(pick) => {
                        self.state.with = Some(pick);
                        self.after_service();
                    }
                    None => self.not_understood(),
                }
            }
            (Step::ChoosingService | Step::ChoosingDay, Some(("svc", rest))) => {
                if let Some(page) = rest.strip_prefix("more:").and_then(|p| p.parse().ok()) {
                    return self.list_services(page);
                }
                match self.ctx.services.iter().find(|s| s.id.to_string() == rest) {
                    Some(service) => {
                        self.state.service = Some(service.id);
                        self.after_service();
                    }
                    None => self.not_understood(),
                }
            }
            (Step::ChoosingDay, Some(("day", rest))) => {
                if let Some(offset) = rest.strip_prefix("more:").and_then(|p| p.parse().ok()) {
                    return self.offer_days(offset);
                }
                match rest.parse::<LocalDate>() {
                    Ok(date) => {
                        self.state.date = Some(date);
                        self.offer_times(0, None);
                    }
                    Err(_) => self.not_understood(),
                }
            }
            (Step::ChoosingTime, Some(("day", "again"))) => self.offer_days(0),
            (Step::ChoosingTime, Some(("time", rest))) => {
                if let Some(page) = rest.strip_prefix("more:").and_then(|p| p.parse().ok()) {
                    return self.offer_times(page, None);
                }
                let start = rest
                    .parse::<i64>()
                    .ok()
                    .and_then(|s| DateTime::from_timestamp(s, 0));
                match start {
                    Some(start) => self.take_time(start),
                    None => self.not_understood(),
                }
            }
            (Step::Confirming, _) if id == "confirm" => match self.payment_titles().len() {
                0 => self.finish_booking(),
                1 => {
                    self.state.payment = self.ctx.settings.payment_methods.first().cloned();
                    self.finish_booking();
                }
                // A conversation from before payment folded into the summary.
                _ => self.offer_payment(),
            },
            (Step::Confirming, _) if id == "change" => self.offer_changes(),
            (Step::ChoosingChange, _) if id == "change:time" => self.offer_times(0, None),
            (Step::ChoosingChange, _) if id == "change:service" => {
                self.let_go();
                self.list_services(0);
            }
            (Step::ChoosingChange, _) if id == "change:name" => self.ask_name(),
            (_, Some(("help", "agent"))) => self.run_global(Global::Agent),
            (Step::ChoosingService | Step::ChoosingDay, Some(("waitlist", "join"))) => {
                match self.service().cloned() {
                    Some(service) => {
                        self.actions.push(BotAction::JoinWaitlist {
                            service_id: service.id,
                        });
                        self.say(
                            &self.texts().waitlisted.clone(),
                            &[("service", &service.name)],
                        );
                        self.finish();
                    }
                    None => self.not_understood(),
                }
            }
            (Step::Confirming | Step::ChoosingPayment, Some(("pay", index))) => {
                match index
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| self.ctx.settings.payment_methods.get(i))
                {
                    Some(method) => {
                        self.state.payment = Some(method.clone());
                        self.finish_booking();
                    }
                    None => self.not_understood(),
                }
            }
            (Step::ChoosingBookingToCancel, Some(("cancel", booking))) => {
                self.finish_cancel(booking)
            }
            (Step::ChoosingBookingToReschedule, Some(("resched", booking))) => {
                match self
                    .upcoming_bookings()
                    .into_iter()
                    .find(|b| b.booking_id.to_string() == booking)
                {
                    Some(b) => {
                        self.state.rescheduling = Some(b.booking_id);
                        self.state.service = Some(b.service_id);
                        self.offer_days(0);
                    }
                    None => self.not_understood(),
                }
            }
            _ => self.not_understood(),
        }
    }

    fn service(&self) -> Option<&Service> {
        let id = self.state.service?;
        self.ctx.services.iter().find(|s| s.id == id)
    }

    /// Who the appointment may be with: those who can do the service, narrowed to the member
    /// the customer asked for (the default resource when the business has no staff).
    fn candidates(&self) -> Vec<Option<&StaffMember>> {
        let Some(service) = self.service() else {
            return Vec::new();
        };
        let mut all = self.ctx.settings.staff_for(service);
        // A member who does not do this service (the customer changed it) is no longer asked
        // for.
        if let Some(StaffPick::Member(id)) = &self.state.with
            && all.iter().any(|m| m.is_some_and(|m| m.id == *id))
        {
            all.retain(|m| m.is_some_and(|m| m.id == *id));
        }
        all
    }

    /// Free slots of the chosen service with `member` on `date`, not counting the hold of the
    /// booking being rescheduled (moving within one's own slot is allowed) nor the customer's
    /// own reservation.
    fn slots_with(&self, member: Option<&StaffMember>, date: LocalDate) -> Vec<Slot> {
        let Some(service) = self.service() else {
            return Vec::new();
        };
        let holds: Vec<Interval> = self
            .calendar
            .taken(&resource_of(member), date, self.now)
            .into_iter()
            .filter(|(b, _)| Some(*b) != self.state.rescheduling && Some(*b) != self.state.hold)
            .map(|(_, i)| i)
            .collect();
        // A day past the horizon is only ever offered when the horizon is full.
        let rules = self.ctx.settings.rules;
        let horizon = if self.within_horizon(date) {
            rules.horizon_days
        } else {
            rules.furthest_days()
        };
        free_slots_within(
            self.ctx.settings,
            service,
            member,
            date,
            &holds,
            self.now,
            horizon,
        )
    }

    fn within_horizon(&self, date: LocalDate) -> bool {
        let horizon = u64::from(self.ctx.settings.rules.horizon_days);
        self.local_date(self.now)
            .checked_add_days(chrono::Days::new(horizon))
            .is_none_or(|last| date <= last)
    }

    /// The times free on `date` with any of the candidates, once each.
    fn slots_on(&self, date: LocalDate) -> Vec<Slot> {
        let mut slots: Vec<Slot> = self
            .candidates()
            .into_iter()
            .flat_map(|m| self.slots_with(m, date))
            .collect();
        slots.sort_by_key(|s| s.appointment.start);
        slots.dedup_by_key(|s| s.appointment.start);
        slots
    }

    /// Whose agenda `start` on `date` goes on: the one already chosen (the customer's
    /// reservation, the booking being moved) while still free, else the candidate free then
    /// with the fewest appointments that day (the staff's order breaks a tie).
    fn resource_at(&self, date: LocalDate, start: DateTime<Utc>) -> Option<ResourceId> {
        let free: Vec<ResourceId> = self
            .candidates()
            .into_iter()
            .filter(|m| {
                self.slots_with(*m, date)
                    .iter()
                    .any(|s| s.appointment.start == start)
            })
            .map(resource_of)
            .collect();
        let current = self.state.resource.clone().or_else(|| {
            let moving = self.state.rescheduling?;
            self.calendar
                .bookings()
                .into_iter()
                .find(|b| b.booking_id == moving)
                .map(|b| b.resource)
        });
        if let Some(current) = current.filter(|r| free.contains(r)) {
            return Some(current);
        }
        free.into_iter()
            .min_by_key(|r| self.calendar.taken(r, date, self.now).len())
    }

    /// The days customers may book, today first.
    fn bookable_days(&self) -> impl Iterator<Item = LocalDate> + '_ {
        let today = self.local_date(self.now);
        (0..=self.ctx.settings.rules.horizon_days)
            .filter_map(move |d| today.checked_add_days(chrono::Days::new(u64::from(d))))
    }

    /// A member's name, for the summary; none for the default resource.
    fn staff_name(&self, resource: Option<&ResourceId>) -> Option<String> {
        resource
            .and_then(|r| self.ctx.settings.member(r))
            .map(|m| m.name.clone())
    }

    fn offer_days(&mut self, offset: usize) {
        let days: Vec<(LocalDate, Slot)> = self
            .bookable_days()
            .filter_map(|d| self.slots_on(d).first().map(|s| (d, *s)))
            .skip(offset)
            .take(PAGE + 1)
            .collect();
        if days.is_empty() {
            return self.fully_booked();
        }
        let mut choices: Vec<Choice> = days
            .iter()
            .take(PAGE)
            .map(|(d, first)| Choice {
                id: format!("day:{d}"),
                title: self.date_label(*d),
                description: Some(render(
                    self.labels().from_time,
                    &[("time", &first.local_start.format("%H:%M").to_string())],
                )),
            })
            .collect();
        if days.len() > PAGE {
            choices.push(more(
                format!("day:more:{}", offset + PAGE),
                self.labels().more_days,
            ));
        }
        let service = self.service().map(|s| s.name.clone()).unwrap_or_default();
        let body = self.fill(&self.texts().choose_day, &[("service", &service)]);
        self.ask(Step::ChoosingDay, &body, self.labels().days, choices);
    }

    /// Offers the free times of the chosen date, after `lead` (a text such as "that time was
    /// just taken").
    fn offer_times(&mut self, page: usize, lead: Option<String>) {
        let Some(date) = self.state.date else {
            return self.offer_days(0);
        };
        let slots = self.slots_on(date);
        let date_label = self.date_label(date);
        if slots.is_empty() {
            let service = self.service().map(|s| s.name.clone()).unwrap_or_default();
            self.say(
                &self.texts().no_times.clone(),
                &[("date", &date_label), ("service", &service)],
            );
            return self.offer_days(0);
        }
        let mut choices: Vec<Choice> = slots
            .iter()
            .skip(page * PAGE)
            .take(PAGE)
            .map(|s| Choice {
                id: format!("time:{}", s.appointment.start.timestamp()),
                title: s.local_start.format("%H:%M").to_string(),
                description: None,
            })
            .collect();
        if slots.len() > (page + 1) * PAGE {
            choices.push(more(
                format!("time:more:{}", page + 1),
                self.labels().later_times,
            ));
        }
        choices.push(more("day:again".into(), self.labels().another_day));
        let body =
            lead.unwrap_or_else(|| self.fill(&self.texts().choose_time, &[("date", &date_label)]));
        self.ask(Step::ChoosingTime, &body, self.labels().times, choices);
    }

    /// Nothing free for the service within the horizon: never a dead end. The customer is
    /// offered the first free day past it when the business allows, the waitlist, another
    /// service and a person, and hears how to reach the business.
    fn fully_booked(&mut self) {
        let service = self.service().map(|s| s.name.clone()).unwrap_or_default();
        let rules = self.ctx.settings.rules;
        let days = rules.horizon_days.to_string();
        let today = self.local_date(self.now);
        let first_beyond = (rules.horizon_days + 1..=rules.furthest_days())
            .filter_map(|d| today.checked_add_days(chrono::Days::new(u64::from(d))))
            .find_map(|d| self.slots_on(d).first().map(|s| (d, *s)));
        let mut choices = Vec::new();
        let (step, body) = match first_beyond {
            Some((date, first)) => {
                let label = self.date_label(date);
                choices.push(Choice {
                    id: format!("day:{date}"),
                    title: label.clone(),
                    description: Some(render(
                        self.labels().from_time,
                        &[("time", &first.local_start.format("%H:%M").to_string())],
                    )),
                });
                let body = self.fill(
                    &self.texts().first_free_day,
                    &[("service", &service), ("days", &days), ("date", &label)],
                );
                (Step::ChoosingDay, body)
            }
            None => {
                let body = self.fill(
                    &self.texts().fully_booked,
                    &[("service", &service), ("days", &days)],
                );
                (Step::ChoosingService, body)
            }
        };
        if self.ctx.services.len() > 1 && self.state.rescheduling.is_none() {
            choices.push(more("svc:more:0".into(), self.labels().other_services));
        }
        if self.state.rescheduling.is_none() {
            choices.push(more("waitlist:join".into(), self.labels().join_waitlist));
        }
        choices.push(more("help:agent".into(), self.labels().talk_to_us));
        self.ask(step, &body, self.labels().options, choices);
    }

    /// A waiting customer answers the offer of a freed time: taking it is choosing that time
    /// (kept if still free, else the nearest free that day); no thanks leaves the waitlist.
    fn on_offer(&mut self, answer: OfferAnswer, service_id: ServiceId) {
        let Some(service) = self
            .ctx
            .services
            .iter()
            .find(|s| s.id == service_id)
            .cloned()
        else {
            return self.start();
        };
        match answer {
            OfferAnswer::Take(start) => {
                self.finish();
                if !self.ctx.bookings_open {
                    return self.say(&self.texts().bookings_paused.clone(), &[]);
                }
                self.state.service = Some(service.id);
                self.state.with = Some(StaffPick::Anyone);
                self.state.date = Some(self.local_date(start));
                self.choose_time(start);
            }
            OfferAnswer::Leave => {
                self.actions.push(BotAction::LeaveWaitlist {
                    service_id: service.id,
                });
                self.say(&self.texts().waitlist_left.clone(), &[]);
                self.repeat_prompt_if_busy();
            }
        }
    }

    /// The customer chose a time: if it is still free, it is kept for them while they finish
    /// (the agenda decides, with the turn); if it was just taken, the times still free.
    /// The customer picked `start`, by tapping it or typing it: a booking being moved moves
    /// there; otherwise the time is held for a new one.
    fn take_time(&mut self, start: DateTime<Utc>) {
        if self.state.rescheduling.is_some() {
            self.state.start = Some(start);
            self.finish_reschedule();
        } else {
            self.choose_time(start);
        }
    }

    fn choose_time(&mut self, start: DateTime<Utc>) {
        let (Some(service), Some(date)) = (self.service().cloned(), self.state.date) else {
            return self.start();
        };
        let free = self.slots_on(date);
        if free.iter().any(|s| s.appointment.start == start) {
            return self.reserve(&service, start);
        }
        // Taken since it was offered: the nearest free time that day (the later one on a
        // tie) is kept instead, and the customer can still change it. A list would have
        // everyone who lost the race pick the same first time again.
        let nearest = free
            .iter()
            .map(|s| s.appointment.start)
            .min_by_key(|s| ((*s - start).num_seconds().abs(), *s < start));
        match nearest {
            Some(nearest) => {
                let lead = self.fill(
                    &self.texts().slot_taken_kept,
                    &[
                        ("wanted", &self.time_label(start)),
                        ("time", &self.time_label(nearest)),
                    ],
                );
                self.lead = Some(lead);
                self.reserve(&service, nearest);
            }
            None => {
                self.offer_others_if_taken(date, start);
            }
        }
    }

    /// Reserves `start` for the customer and goes on to the summary.
    fn reserve(&mut self, service: &Service, start: DateTime<Utc>) {
        self.let_go();
        let date = self.local_date(start);
        let resource = self
            .resource_at(date, start)
            .unwrap_or_else(ResourceId::default_resource);
        let minutes = i64::from(self.ctx.settings.rules.hold_minutes);
        if minutes > 0 {
            let booking_id = self.new_booking_id;
            self.actions.push(BotAction::ReserveSlot {
                booking_id,
                service_id: service.id,
                start,
                until: self.now + Duration::minutes(minutes),
                resource: resource.clone(),
            });
            self.state.hold = Some(booking_id);
        }
        self.state.start = Some(start);
        self.state.resource = Some(resource);
        self.after_time();
    }

    /// The name comes from the conversation (remembered, or the WhatsApp profile); it is asked
    /// only when there is none and the flow wants one.
    fn after_time(&mut self) {
        if self.state.customer_name.is_none() {
            self.state.customer_name = self
                .profile_name
                .map(str::trim)
                .filter(|n| !n.is_empty() && n.chars().count() <= 60)
                .map(str::to_owned);
            if self.state.customer_name.is_none() && self.ctx.settings.flow.ask_name {
                return self.ask_name();
            }
        }
        self.offer_summary();
    }

    fn ask_name(&mut self) {
        self.state.step = Step::AskingName;
        self.state.prompt = None;
        self.say(&self.texts().ask_name.clone(), &[]);
    }

    fn on_name(&mut self, text: &str) {
        let name = text.trim();
        if name.is_empty() || name.chars().count() > 60 {
            return self.say(&self.texts().ask_name.clone(), &[]);
        }
        self.state.customer_name = Some(name.to_owned());
        self.offer_summary();
    }

    /// How the customer can pay, as choice titles; empty when the flow does not ask.
    fn payment_titles(&self) -> Vec<&'static str> {
        if !self.ctx.settings.flow.ask_payment {
            return Vec::new();
        }
        self.ctx
            .settings
            .payment_methods
            .iter()
            .map(|m| match m {
                PaymentMethod::Cash => self.labels().pay_at_venue,
                PaymentMethod::BankTransfer { .. } => self.labels().bank_transfer,
                PaymentMethod::PaymentLink { .. } => self.labels().pay_online,
            })
            .collect()
    }

    /// The summary, with the name and how long the time is kept. Its choices confirm: with
    /// several payment methods, each method is a way to confirm, so paying is not one more
    /// question.
    fn offer_summary(&mut self) {
        let (Some(service), Some(start)) = (self.service().cloned(), self.state.start) else {
            return self.start();
        };
        let mut body = self.fill(
            &self.texts().summary,
            &[
                ("service", &service.name),
                ("date", &self.date_label(self.local_date(start))),
                ("time", &self.time_label(start)),
                ("price", &service.price.to_string()),
            ],
        );
        if let Some(staff) = self.staff_name(self.state.resource.as_ref()) {
            body = format!(
                "{body}\n{}",
                self.fill(&self.texts().with_staff, &[("staff", &staff)])
            );
        }
        if self.state.customer_name.is_some() {
            body = format!("{body}\n{}", self.fill(&self.texts().booking_name, &[]));
        }
        if self.state.hold.is_some() {
            let minutes = self.ctx.settings.rules.hold_minutes.to_string();
            body = format!(
                "{body}\n{}",
                self.fill(&self.texts().held, &[("minutes", &minutes)])
            );
        }
        let titles = self.payment_titles();
        let mut choices: Vec<Choice> = if titles.len() > 1 {
            body = format!("{body}\n{}", self.fill(&self.texts().choose_payment, &[]));
            titles
                .iter()
                .enumerate()
                .map(|(i, t)| more(format!("pay:{i}"), t))
                .collect()
        } else {
            vec![more("confirm".into(), self.labels().confirm)]
        };
        choices.push(more("change".into(), self.labels().change));
        self.ask(Step::Confirming, &body, self.labels().options, choices);
    }

    fn offer_changes(&mut self) {
        let l = self.labels();
        let choices = vec![
            more("change:time".into(), l.another_time),
            more("change:service".into(), l.another_service),
            more("change:name".into(), l.my_name),
        ];
        self.ask(Step::ChoosingChange, l.what_to_change, l.options, choices);
    }

    fn offer_payment(&mut self) {
        let choices = self
            .payment_titles()
            .iter()
            .enumerate()
            .map(|(i, t)| more(format!("pay:{i}"), t))
            .collect();
        self.ask(
            Step::ChoosingPayment,
            &self.texts().choose_payment.clone(),
            self.labels().payment,
            choices,
        );
    }

    /// Books the chosen slot if it is still free; otherwise offers the times still free.
    fn finish_booking(&mut self) {
        let (Some(service), Some(date), Some(start)) =
            (self.service().cloned(), self.state.date, self.state.start)
        else {
            return self.start();
        };
        if !self.ctx.bookings_open {
            self.say(&self.texts().bookings_paused.clone(), &[]);
            return self.finish();
        }
        if self.offer_others_if_taken(date, start) {
            return;
        }
        let resource = self
            .resource_at(date, start)
            .unwrap_or_else(ResourceId::default_resource);
        // The booking holds the reservation it made, under the same id.
        let booking_id = self.state.hold.take().unwrap_or(self.new_booking_id);
        let reference = booking_reference(booking_id);
        let payment = self.state.payment.clone();
        let confirm = matches!(payment, None | Some(PaymentMethod::Cash));
        let price = service.price.to_string();
        let instructions = match &payment {
            None => String::new(),
            Some(PaymentMethod::Cash) => self.fill(&self.texts().pay_cash, &[]),
            Some(PaymentMethod::BankTransfer { details }) => self.fill(
                &self.texts().pay_transfer,
                &[("price", &price), ("details", details)],
            ),
            Some(PaymentMethod::PaymentLink { url }) => {
                self.fill(&self.texts().pay_link, &[("price", &price), ("url", url)])
            }
        };
        self.actions.push(BotAction::RequestBooking {
            booking_id,
            reference: reference.clone(),
            service_id: service.id,
            start,
            resource: resource.clone(),
            customer_name: self.state.customer_name.clone(),
            payment,
            confirm,
        });
        let confirmed = self.fill(
            &self.texts().confirmed,
            &[
                ("service", &service.name),
                ("date", &self.date_label(date)),
                ("time", &self.time_label(start)),
                ("reference", &reference),
                ("price", &price),
                ("payment", &instructions),
            ],
        );
        let confirmed = match self.staff_name(Some(&resource)) {
            Some(staff) => format!(
                "{}\n{}",
                confirmed.trim_end(),
                self.fill(&self.texts().with_staff, &[("staff", &staff)])
            ),
            None => confirmed,
        };
        self.replies.push(Reply::text(confirmed.trim_end()));
        self.finish();
    }

    /// If `start` is no longer free on `date` (taken while the customer chose), says so and
    /// offers the times still free; true when it did.
    fn offer_others_if_taken(&mut self, date: LocalDate, start: DateTime<Utc>) -> bool {
        if self
            .slots_on(date)
            .iter()
            .any(|s| s.appointment.start == start)
        {
            return false;
        }
        let lead = self.fill(
            &self.texts().slot_taken,
            &[("time", &self.time_label(start))],
        );
        self.let_go();
        self.state.start = None;
        self.offer_times(0, Some(lead));
        true
    }

    fn finish_reschedule(&mut self) {
        let (Some(booking_id), Some(date), Some(start)) =
            (self.state.rescheduling, self.state.date, self.state.start)
        else {
            return self.start();
        };
        if self.offer_others_if_taken(date, start) {
            return;
        }
        let resource = self
            .resource_at(date, start)
            .unwrap_or_else(ResourceId::default_resource);
        // Its own time again (it is offered: a booking may move within its own slot) leaves
        // it as it is, and the customer is told where it is.
        let unchanged = self
            .calendar
            .bookings()
            .into_iter()
            .find(|b| b.booking_id == booking_id)
            .is_some_and(|b| b.appointment.start == start && b.resource == resource);
        if !unchanged {
            self.actions.push(BotAction::RescheduleBooking {
                booking_id,
                start,
                resource,
            });
        }
        let text = self.fill(
            &self.texts().rescheduled,
            &[
                ("reference", &booking_reference(booking_id)),
                ("date", &self.date_label(date)),
                ("time", &self.time_label(start)),
            ],
        );
        self.replies.push(Reply::text(text));
        self.finish();
    }

    fn on_reminder(&mut self, answer: ReminderAnswer, booking_id: BookingId) {
        let Some(booking) = self
            .upcoming_bookings()
            .into_iter()
            .find(|b| b.booking_id == booking_id)
        else {
            // Cancelled, moved away from or past since: say what is ahead instead.
            return self.run_global(Global::MyBookings);
        };
        match answer {
            ReminderAnswer::Confirm => {
                self.actions
                    .push(BotAction::ConfirmAttendance { booking_id });
                let start = booking.appointment.start;
                self.say(
                    &self.texts().attendance_confirmed.clone(),
                    &[
                        ("service", &booking.service_name),
                        ("date", &self.date_label(self.local_date(start))),
                        ("time", &self.time_label(start)),
                    ],
                );
                self.repeat_prompt_if_busy();
            }
            ReminderAnswer::Cancel => self.finish_cancel(&booking_id.to_string()),
            ReminderAnswer::Reschedule => {
                self.finish();
                self.state.rescheduling = Some(booking_id);
                self.state.service = Some(booking.service_id);
                self.offer_days(0);
            }
        }
    }

    fn finish_cancel(&mut self, booking: &str) {
        let Some(b) = self
            .upcoming_bookings()
            .into_iter()
            .find(|b| b.booking_id.to_string() == booking)
        else {
            return self.not_understood();
        };
        self.actions.push(BotAction::CancelBooking {
            booking_id: b.booking_id,
        });
        let text = self.fill(
            &self.texts().cancelled,
            &[
                ("reference", &booking_reference(b.booking_id)),
                ("service", &b.service_name),
                (
                    "date",
                    &self.date_label(self.local_date(b.appointment.start)),
                ),
                ("time", &self.time_label(b.appointment.start)),
            ],
        );
        self.replies.push(Reply::text(text));
        self.finish();
    }

    /// Back to idle, remembering only who the customer is; a time still kept is let go.
    fn finish(&mut self) {
        self.let_go();
        self.state = BotState {
            customer_name: self.state.customer_name.take(),
            language: self.state.language,
            ..BotState::default()
        };
    }

    /// Lets the customer's reservation go, if they have one.
    fn let_go(&mut self) {
        let resource = self.state.resource.take();
        if let Some((booking_id, start)) = self.state.hold.take().zip(self.state.start) {
            self.actions.push(BotAction::ReleaseSlot {
                booking_id,
                start,
                resource: resource.unwrap_or_else(ResourceId::default_resource),
            });
        }
    }

    fn upcoming_bookings(&self) -> Vec<BookingView> {
        let mut upcoming: Vec<BookingView> = self
            .calendar
            .bookings()
            .into_iter()
            .filter(|b| {
                matches!(
                    b.status,
                    BookingStatus::Requested | BookingStatus::Confirmed
                ) && b.appointment.start > self.now
            })
            .collect();
        upcoming.sort_by_key(|b| b.appointment.start);
        upcoming
    }

    fn offer_own_bookings(&mut self, step: Step) {
        let upcoming = self.upcoming_bookings();
        if upcoming.is_empty() {
            self.say(&self.texts().nothing_to_cancel.clone(), &[]);
            return self.repeat_prompt_if_busy();
        }
        let prefix = if step == Step::ChoosingBookingToCancel {
            "cancel"
        } else {
            "resched"
        };
        let choices = upcoming
            .iter()
            .take(PAGE)
            .map(|b| Choice {
                id: format!("{prefix}:{}", b.booking_id),
                title: format!(
                    "{} {}",
                    self.date_label(self.local_date(b.appointment.start)),
                    self.time_label(b.appointment.start)
                ),
                description: Some(format!(
                    "{} · {}",
                    b.service_name,
                    booking_reference(b.booking_id)
                )),
            })
            .collect();
        let body = if step == Step::ChoosingBookingToCancel {
            self.labels().which_to_cancel
        } else {
            self.labels().which_to_move
        };
        self.state.rescheduling = None;
        self.ask(step, body, self.labels().bookings, choices);
    }

    // ---- asking, re-asking, understanding ----

    fn ask(&mut self, step: Step, body: &str, button: &str, choices: Vec<Choice>) {
        let prompt = Reply::choices(body, button, choices.clone());
        self.state.step = step;
        self.state.prompt = Some(prompt.clone());
        // A lead is said once, with the question; asked again, the question stands alone.
        let reply = match self.lead.take() {
            Some(lead) => Reply::choices(format!("{lead}\n{body}"), button, choices),
            None => prompt,
        };
        self.replies.push(reply);
    }

    fn repeat_prompt(&mut self) {
        if let Some(prompt) = self.state.prompt.clone() {
            self.replies.push(prompt);
        }
    }

    fn repeat_prompt_if_busy(&mut self) {
        if self.state.step != Step::Idle && self.state.step != Step::HandedOff {
            self.repeat_prompt();
        }
    }

    fn ask_again_or_start(&mut self) {
        match self.state.step {
            Step::Idle => self.start(),
            Step::AskingName => self.say(&self.texts().ask_name.clone(), &[]),
            _ => self.repeat_prompt(),
        }
    }

    fn not_understood(&mut self) {
        self.say(&self.texts().not_understood.clone(), &[]);
        if self.state.prompt.is_some() {
            self.repeat_prompt();
        } else {
            self.start();
        }
    }

    /// Maps a typed answer to one of the choices last offered: its number, or its title.
    fn typed_choice(&self, text: &str) -> Option<String> {
        let offered = self.state.prompt.as_ref()?.offered();
        let typed = normalize(text);
        if let Ok(n) = typed.parse::<usize>() {
            return offered.get(n.checked_sub(1)?).map(|c| c.id.clone());
        }
        if typed.is_empty() {
            return None;
        }
        if YES.contains(&typed.as_str()) && offered.iter().any(|c| c.id == "confirm") {
            return Some("confirm".into());
        }
        offered
            .iter()
            .find(|c| normalize(&c.title) == typed)
            .or_else(|| {
                let mut matching = offered.iter().filter(|c| {
                    contains_words(&c.title, &typed) || contains_words(&typed, &c.title)
                });
                let first = matching.next();
                // Only an unambiguous partial match counts.
                if matching.next().is_none() {
                    first
                } else {
                    None
                }
            })
            .map(|c| c.id.clone())
    }

    fn say(&mut self, template: &str, vars: &[(&str, &str)]) {
        let text = self.fill(template, vars);
        let text = match self.lead.take() {
            Some(lead) => format!("{lead}\n{text}"),
            None => text,
        };
        self.replies.push(Reply::text(text));
    }

    fn fill(&self, template: &str, vars: &[(&str, &str)]) -> String {
        let mut all: Vec<(&str, &str)> = vec![
            ("business_name", self.ctx.business_name),
            ("contact", self.ctx.contact),
        ];
        let name = self.state.customer_name.clone().unwrap_or_default();
        all.push(("name", &name));
        all.extend_from_slice(vars);
        render(template, &all)
    }

    fn local_date(&self, at: DateTime<Utc>) -> LocalDate {
        agenda_day(self.ctx.settings, at)
    }

    fn date_label(&self, date: LocalDate) -> String {
        i18n::date_label(self.lang(), date)
    }

    fn time_label(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.ctx.settings.time_zone.tz())
            .format("%H:%M")
            .to_string()
    }

    fn hours_text(&self) -> String {
        let show = |ranges: &[TimeRange]| {
            if ranges.is_empty() {
                self.labels().closed.to_owned()
            } else {
                ranges
                    .iter()
                    .map(|r| format!("{}–{}", r.open, r.close))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        use chrono::Weekday::*;
        [Mon, Tue, Wed, Thu, Fri, Sat, Sun]
            .iter()
            .map(|d| {
                let name = self.labels().weekdays[d.num_days_from_monday() as usize];
                format!("{name}: {}", show(self.ctx.settings.hours.on(*d)))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Whether an inbound of this type is a message the customer expects an answer to (a
/// reaction to one of the bot's messages, or a system notice, is not).
fn expects_answer(message_type: &str) -> bool {
    !matches!(
        message_type,
        "reaction" | "system" | "ephemeral" | "unsupported_reaction"
    )
}

fn more(id: String, title: &str) -> Choice {
    Choice {
        id,
        title: title.to_owned(),
        description: None,
    }
}

/// For the command side: the appointment interval an action's start gives the service, and the
/// interval it occupies on the agenda.
pub fn appointment_for(service: &Service, start: DateTime<Utc>) -> (Interval, Interval) {
    let appointment = crate::scheduling::appointment_at(start, service.duration);
    (appointment, occupied(appointment, service.buffer_minutes))
}

/// The local day an appointment's agenda is.
pub fn agenda_day(settings: &BotSettings, start: DateTime<Utc>) -> LocalDate {
    start.with_timezone(&settings.time_zone.tz()).date_naive()
}
