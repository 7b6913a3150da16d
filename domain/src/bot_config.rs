//! A tenant's bot configuration: opening hours, closures, booking rules, services, payment
//! methods, keyword replies and the conversation flow's texts and steps. Stream
//! `bot_config/main` of each tenant. Tenants change their bot with this data, never with code.
//!
//! Versioned: every command names the version it edits (the stream version, which the HTTP
//! layer exposes as an ETag), so two people editing at once cannot overwrite each other.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::bot::understand::Language;

use crate::decider::Decider;
use crate::event::DomainEvent;
use crate::ids::{ResourceId, ServiceId};
use crate::values::{IanaTimeZone, LocalDate, LocalTime, Money, ServiceDuration};

/// An opening range within one day, `[open, close)` in local time.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$", example = "09:00"))]
    pub open: LocalTime,
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$", example = "19:00"))]
    pub close: LocalTime,
}

/// Opening ranges per weekday, Monday first. Gaps between ranges are breaks.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OpeningHours {
    pub monday: Vec<TimeRange>,
    pub tuesday: Vec<TimeRange>,
    pub wednesday: Vec<TimeRange>,
    pub thursday: Vec<TimeRange>,
    pub friday: Vec<TimeRange>,
    pub saturday: Vec<TimeRange>,
    pub sunday: Vec<TimeRange>,
}

impl OpeningHours {
    pub fn on(&self, weekday: chrono::Weekday) -> &[TimeRange] {
        use chrono::Weekday::*;
        match weekday {
            Mon => &self.monday,
            Tue => &self.tuesday,
            Wed => &self.wednesday,
            Thu => &self.thursday,
            Fri => &self.friday,
            Sat => &self.saturday,
            Sun => &self.sunday,
        }
    }

    /// Ranges that do not open before they close, or overlap, under `field`.
    fn problems(&self, field: &str, problem: &mut impl FnMut(String, &str)) {
        for (day, ranges) in self.days() {
            let mut sorted: Vec<&TimeRange> = ranges.iter().collect();
            sorted.sort_by_key(|r| r.open);
            for (i, range) in ranges.iter().enumerate() {
                if range.open >= range.close {
                    problem(
                        format!("{field}.{day}[{i}]"),
                        "opens before it closes, within the day",
                    );
                }
            }
            if sorted.windows(2).any(|w| w[1].open < w[0].close) {
                problem(format!("{field}.{day}"), "opening ranges overlap");
            }
        }
    }

    fn days(&self) -> [(&'static str, &[TimeRange]); 7] {
        [
            ("monday", &self.monday),
            ("tuesday", &self.tuesday),
            ("wednesday", &self.wednesday),
            ("thursday", &self.thursday),
            ("friday", &self.friday),
            ("saturday", &self.saturday),
            ("sunday", &self.sunday),
        ]
    }
}

/// Closed from `from` to `to`, both included (holidays, vacations).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closure {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date, example = "2026-12-24"))]
    pub from: LocalDate,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date, example = "2026-12-24"))]
    pub to: LocalDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingRules {
    /// How long before its start a slot can still be booked.
    #[cfg_attr(feature = "openapi", schema(maximum = 43200))]
    pub min_notice_minutes: u32,
    /// How far ahead customers may book.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 365))]
    pub horizon_days: u32,
    /// Slots start every this many minutes from each opening.
    #[cfg_attr(feature = "openapi", schema(minimum = 5, maximum = 240))]
    pub slot_step_minutes: u32,
    /// How long a time a customer chose is kept for them while they finish booking; 0 keeps
    /// none (the time is checked again when they confirm).
    #[serde(default = "default_hold_minutes")]
    #[cfg_attr(feature = "openapi", schema(maximum = 60))]
    pub hold_minutes: u32,
    /// When nothing is free within the horizon, how many days past it the bot may look for
    /// the first free day and offer it; 0 offers none.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 365))]
    pub beyond_horizon_days: u32,
}

impl BookingRules {
    /// The furthest ahead the bot may ever offer a time, in days: the horizon and the days
    /// past it looked at when the horizon is full.
    pub fn furthest_days(&self) -> u32 {
        self.horizon_days + self.beyond_horizon_days
    }
}

fn default_hold_minutes() -> u32 {
    10
}

impl Default for BookingRules {
    fn default() -> Self {
        Self {
            min_notice_minutes: 60,
            horizon_days: 30,
            slot_step_minutes: 15,
            hold_minutes: default_hold_minutes(),
            beyond_horizon_days: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub id: ServiceId,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub price: Money,
    pub duration: ServiceDuration,
    /// Kept free after each appointment (cleaning, notes).
    #[serde(default)]
    pub buffer_minutes: u32,
    /// How many customers at once (a class); 1 for a chair.
    pub capacity: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub active: bool,
    /// Who can do it (staff ids); empty: every member of the staff.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub staff: Vec<ResourceId>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PaymentMethod {
    Cash,
    BankTransfer { details: String },
    PaymentLink { url: String },
}

/// A reply to any of its keywords, matched case- and accent-insensitively as whole words.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeywordReply {
    pub keywords: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 4096))]
    pub reply: String,
}

/// Every text the bot sends, with placeholders: `{business_name}`, `{service}`, `{date}`,
/// `{time}`, `{price}`, `{reference}`, `{name}`, `{hours}`, `{opens}`, `{payment}`,
/// `{contact}` (how to reach the business otherwise).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Texts {
    pub greeting: String,
    pub choose_service: String,
    pub choose_day: String,
    pub choose_time: String,
    pub no_times: String,
    pub ask_name: String,
    pub summary: String,
    pub choose_payment: String,
    pub confirmed: String,
    pub slot_taken: String,
    pub closed_now: String,
    pub not_understood: String,
    pub cancelled: String,
    pub nothing_to_cancel: String,
    pub handoff: String,
    pub unsupported_message: String,
    pub rescheduled: String,
    pub my_bookings: String,
    pub hours: String,
    pub prices: String,
    pub pay_cash: String,
    pub pay_transfer: String,
    pub pay_link: String,
    /// The plan takes no new booking now (its month's limit, no subscription).
    pub bookings_paused: String,
    /// The business cannot use the bot at all now (its account is suspended).
    pub unavailable: String,
    /// The greeting for a customer the bot knows by name.
    pub welcome_back: String,
    /// A returning customer's shortcut to the service they booked last.
    pub book_again: String,
    /// Under the summary: the name the booking goes under.
    pub booking_name: String,
    /// Under the summary: how long the chosen time is kept (`{minutes}`).
    pub held: String,
    /// Nothing is free for the service within the booking horizon (`{days}`).
    pub fully_booked: String,
    /// Nothing is free within the horizon (`{days}`), and `{date}` is the first free day
    /// past it (offered when the business allows).
    pub first_free_day: String,
    /// Said once to a customer writing faster than the bot may answer.
    pub answer_shortly: String,
    /// The time chosen (`{wanted}`) was taken since it was offered; the nearest (`{time}`) is
    /// kept instead.
    pub slot_taken_kept: String,
    /// The time asked for (`{time}`) is not free on `{date}`: the nearest free times follow.
    pub nearest_times: String,
    /// A reminder sent as reply buttons (within 24 hours of the customer's last message).
    pub reminder: String,
    /// The customer tapped a reminder's Confirm.
    pub attendance_confirmed: String,
    /// Who the appointment should be with (`{service}`); the choices are anyone and the staff
    /// who do it.
    pub choose_staff: String,
    /// Under the summary and the confirmation: who the appointment is with (`{staff}`).
    pub with_staff: String,
    /// The customer joined the waitlist of `{service}`.
    pub waitlisted: String,
    /// A time of `{service}` (`{date}`, `{time}`) freed up for those waiting.
    pub waitlist_offer: String,
    /// The customer said no thanks to an offer, and left the waitlist.
    pub waitlist_left: String,
    /// The customer asked to have their data deleted, and the business decides.
    pub erasure_requested: String,
    /// The customer asked to have their data deleted, and it is done after this message.
    pub erasing: String,
}

impl Default for Texts {
    fn default() -> Self {
        Self {
            greeting: "Hi! Welcome to {business_name}. I can book an appointment for you.".into(),
            choose_service: "Which service would you like?".into(),
            choose_day: "Which day suits you for {service}?".into(),
            choose_time: "These times are free on {date}:".into(),
            no_times: "Sorry, nothing is free on {date}. Please pick another day.".into(),
            ask_name: "What name should I put the booking under?".into(),
            summary: "{service} on {date} at {time} for {price}. Shall I book it?".into(),
            choose_payment: "How would you like to pay?".into(),
            confirmed:
                "Booked! {service} on {date} at {time}. Your reference is {reference}. {payment}"
                    .into(),
            slot_taken: "Sorry, {time} was just taken. Here are the times still free:".into(),
            closed_now:
                "We are closed right now; we open {opens}. You can still book a time below.".into(),
            not_understood: "Sorry, I did not get that. Please pick one of the options.".into(),
            cancelled: "Your booking {reference} on {date} at {time} is cancelled.".into(),
            nothing_to_cancel: "You have no upcoming booking.".into(),
            handoff: "I have asked a member of the team to reply to you here.".into(),
            unsupported_message: "I can only read text for now. Please type your answer.".into(),
            rescheduled: "Done: your booking {reference} is now on {date} at {time}.".into(),
            my_bookings: "Your upcoming bookings:".into(),
            hours: "Our opening hours:\n{hours}".into(),
            prices: "Our services:".into(),
            pay_cash: "Please pay at the venue.".into(),
            pay_transfer: "Please transfer {price} to: {details}".into(),
            pay_link: "Please pay {price} here: {url}".into(),
            bookings_paused: "Online booking is paused for now, sorry. Please contact \
                {business_name} at {contact} and they will find you a time. You can still \
                see, move or cancel your bookings here."
                .into(),
            unavailable: "Sorry, {business_name} cannot take bookings here at the moment. \
                Please contact them at {contact}."
                .into(),
            welcome_back: "Hi {name}! Welcome back to {business_name}.".into(),
            book_again: "Would you like to book {service} again?".into(),
            booking_name: "Name: {name}".into(),
            held: "I am keeping this time for you for {minutes} minutes.".into(),
            fully_booked: "Sorry, {service} is fully booked for the next {days} days. \
                Please contact {business_name} at {contact}, or pick something else."
                .into(),
            first_free_day: "{service} is fully booked for the next {days} days. The first \
                free day is {date}."
                .into(),
            answer_shortly: "Thanks! I will answer your last message in a moment.".into(),
            slot_taken_kept: "Sorry, {wanted} was just taken, so I am keeping {time} for you \
                instead."
                .into(),
            nearest_times: "{time} is not free on {date}. The nearest free times:".into(),
            reminder: "Hi {name}, a reminder of your {service} on {date} at {time}. Will you \
                come?"
                .into(),
            attendance_confirmed: "Thank you! See you on {date} at {time}.".into(),
            choose_staff: "Who would you like for {service}?".into(),
            with_staff: "With {staff}.".into(),
            waitlisted: "You are on the waitlist for {service}. I will message you here as soon \
                as a time becomes free."
                .into(),
            waitlist_offer: "Good news: {service} on {date} at {time} has just become free. \
                Shall I book it for you?"
                .into(),
            waitlist_left: "All right, you are off the waitlist.".into(),
            erasure_requested: "I have passed your request to delete your data to \
                {business_name}. They will answer you here."
                .into(),
            erasing: "{business_name} is deleting everything it holds about you: your \
                messages, your name and your number. This is our last message unless you \
                write again."
                .into(),
        }
    }
}

/// The texts a business did not write are its language's defaults (a Spanish business that
/// changed only its greeting speaks Spanish everywhere else).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawFlowSettings")]
pub struct FlowSettings {
    /// Ask the customer's name when the conversation does not know it yet.
    pub ask_name: bool,
    /// Ask how the customer will pay (else bookings confirm directly).
    pub ask_payment: bool,
    /// A conversation idle this long starts over.
    #[cfg_attr(feature = "openapi", schema(minimum = 5, maximum = 10080))]
    pub session_timeout_minutes: u32,
    /// The language of `texts`, of the labels and of dates.
    #[serde(default)]
    pub language: Language,
    /// A customer who writes in another language the bot speaks is answered in it (with that
    /// language's default texts).
    #[serde(default)]
    pub answer_in_customer_language: bool,
    #[serde(default)]
    pub texts: Texts,
}

/// `FlowSettings` as written: the texts given, to lay over the language's defaults.
#[derive(Deserialize)]
struct RawFlowSettings {
    ask_name: bool,
    ask_payment: bool,
    session_timeout_minutes: u32,
    #[serde(default)]
    language: Language,
    #[serde(default)]
    answer_in_customer_language: bool,
    #[serde(default)]
    texts: serde_json::Map<String, serde_json::Value>,
}

impl TryFrom<RawFlowSettings> for FlowSettings {
    type Error = serde_json::Error;

    fn try_from(raw: RawFlowSettings) -> Result<Self, Self::Error> {
        let mut texts = serde_json::to_value(crate::bot::i18n::default_texts(raw.language))?;
        if let Some(defaults) = texts.as_object_mut() {
            defaults.extend(raw.texts);
        }
        Ok(Self {
            ask_name: raw.ask_name,
            ask_payment: raw.ask_payment,
            session_timeout_minutes: raw.session_timeout_minutes,
            language: raw.language,
            answer_in_customer_language: raw.answer_in_customer_language,
            texts: serde_json::from_value(texts)?,
        })
    }
}

impl Default for FlowSettings {
    fn default() -> Self {
        Self {
            ask_name: true,
            ask_payment: true,
            session_timeout_minutes: 60,
            language: Language::default(),
            answer_in_customer_language: false,
            texts: Texts::default(),
        }
    }
}

/// Everything but the services (which have their own commands and events).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotSettings {
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "Europe/Madrid"))]
    pub time_zone: IanaTimeZone,
    pub hours: OpeningHours,
    #[serde(default)]
    pub closures: Vec<Closure>,
    #[serde(default)]
    pub rules: BookingRules,
    #[serde(default)]
    pub payment_methods: Vec<PaymentMethod>,
    #[serde(default)]
    pub keyword_replies: Vec<KeywordReply>,
    #[serde(default)]
    pub flow: FlowSettings,
    #[serde(default)]
    pub messaging: Messaging,
    /// The people (or chairs, rooms) appointments are with, each with its own agenda. None:
    /// everything is booked on one default resource, in the business's hours.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 50))]
    pub staff: Vec<StaffMember>,
    #[serde(default)]
    pub privacy: Privacy,
}

/// What the business does with its customers' requests about their data.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Privacy {
    pub erasure_requests: ErasureRequests,
}

/// What happens when a customer writes "delete my data" (their right to erasure).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureRequests {
    /// The business decides: the request waits in its inbox (and its owners and admins are
    /// told by email) until someone erases the customer or answers them.
    #[default]
    AskBusiness,
    /// The customer is erased as soon as the bot's confirmation has gone (or failed to).
    EraseAtOnce,
}

/// Someone appointments are with: their own weekly hours (the gaps between ranges are their
/// breaks) and days off; without hours of their own they work the business's.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffMember {
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[a-z0-9_-]{1,64}$", example = "ana"))]
    pub id: ResourceId,
    /// As customers see it (24 characters at most: a WhatsApp list row).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 24))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<OpeningHours>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub time_off: Vec<Closure>,
}

/// The resource (agenda) of a staff member, or the default one for `None`.
pub fn resource_of(member: Option<&StaffMember>) -> ResourceId {
    member.map_or_else(ResourceId::default_resource, |m| m.id.clone())
}

impl BotSettings {
    /// Who can do `service`, in the order the business lists its staff; the default resource
    /// (`None`: the business's own hours) when it has no staff.
    pub fn staff_for(&self, service: &Service) -> Vec<Option<&StaffMember>> {
        if self.staff.is_empty() {
            return vec![None];
        }
        self.staff
            .iter()
            .filter(|m| service.staff.is_empty() || service.staff.contains(&m.id))
            .map(Some)
            .collect()
    }

    pub fn member(&self, id: &ResourceId) -> Option<&StaffMember> {
        self.staff.iter().find(|m| m.id == *id)
    }
}

/// A message template approved for the business's WhatsApp account: its name and language
/// code, as in WhatsApp Manager.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRef {
    pub name: String,
    /// `en`, `es`, `pt_BR`…
    pub language: String,
}

/// What the business sends on its own: reminders before appointments, and the templates
/// WhatsApp requires more than 24 hours after the customer last wrote.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Messaging {
    /// Reminders, in minutes before the appointment; a whole number of days stays at the
    /// appointment's local time across a change of clocks (the day before at 10:00 for a
    /// 10:00 appointment).
    #[serde(default = "default_reminders")]
    #[cfg_attr(feature = "openapi", schema(max_items = 3))]
    pub reminders_before_minutes: Vec<u32>,
    /// The template reminders go as, with the body parameters name, service, date and time
    /// ({{1}} to {{4}}) and the quick-reply buttons Confirm, Reschedule and Cancel (in that
    /// order). Without one, a reminder goes as reply buttons if the customer wrote within 24
    /// hours, and is not sent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder_template: Option<TemplateRef>,
    /// The template a reply refused for the 24-hour window (131047) is sent again as, with the
    /// reply's text as its one body parameter ({{1}}).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up_template: Option<TemplateRef>,
    /// The template the offer of a freed time goes as to a waiting customer who last wrote
    /// more than 24 hours ago, with the body parameters service, date and time ({{1}} to
    /// {{3}}) and the quick-reply buttons Book it and No thanks (in that order). Without one,
    /// the offer goes as reply buttons, and if WhatsApp refuses it for the window, as the
    /// follow-up template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waitlist_template: Option<TemplateRef>,
}

fn default_reminders() -> Vec<u32> {
    vec![24 * 60, 2 * 60]
}

impl Default for Messaging {
    fn default() -> Self {
        Self {
            reminders_before_minutes: default_reminders(),
            reminder_template: None,
            follow_up_template: None,
            waitlist_template: None,
        }
    }
}

impl TemplateRef {
    /// Meta's rules: lowercase letters, digits and underscores up to 512; a language code
    /// such as `en` or `pt_BR`.
    fn problems(&self, field: &str, problem: &mut impl FnMut(String, &str)) {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 512
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            problem(
                format!("{field}.name"),
                "lowercase letters, digits and underscores, up to 512",
            );
        }
        let (lang, region) = self
            .language
            .split_once('_')
            .map_or((self.language.as_str(), None), |(l, r)| (l, Some(r)));
        let language_ok = (2..=3).contains(&lang.len())
            && lang.bytes().all(|b| b.is_ascii_lowercase())
            && region.is_none_or(|r| r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()));
        if !language_ok {
            problem(
                format!("{field}.language"),
                "a language code such as en, es or pt_BR",
            );
        }
    }
}

/// One problem with a configuration: the field at fault (a JSON path) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigProblem {
    pub field: String,
    pub message: String,
}

const PLACEHOLDERS: &[&str] = &[
    "business_name",
    "service",
    "date",
    "time",
    "price",
    "reference",
    "name",
    "hours",
    "opens",
    "payment",
    "details",
    "url",
    "contact",
    "minutes",
    "days",
    "wanted",
    "staff",
];

impl BotSettings {
    /// Every problem at once, so an editor can show them all.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut problem = |field: String, message: &str| {
            problems.push(ConfigProblem {
                field,
                message: message.to_owned(),
            })
        };
        self.hours.problems("hours", &mut problem);
        for (i, closure) in self.closures.iter().enumerate() {
            if closure.from > closure.to {
                problem(format!("closures[{i}]"), "ends before it starts");
            }
        }
        if self.staff.len() > 50 {
            problem("staff".into(), "at most 50 members");
        }
        for (i, member) in self.staff.iter().enumerate() {
            let len = member.name.trim().chars().count();
            if !(1..=24).contains(&len) {
                problem(format!("staff[{i}].name"), "1 to 24 characters");
            }
            if ResourceId::parse(member.id.as_str()).is_err() {
                problem(format!("staff[{i}].id"), "1 to 64 of a-z 0-9 _ -");
            }
            if self.staff[..i].iter().any(|m| m.id == member.id) {
                problem(format!("staff[{i}].id"), "another member has this id");
            }
            if let Some(hours) = &member.hours {
                hours.problems(&format!("staff[{i}].hours"), &mut problem);
            }
            for (j, off) in member.time_off.iter().enumerate() {
                if off.from > off.to {
                    problem(format!("staff[{i}].time_off[{j}]"), "ends before it starts");
                }
            }
        }
        let rules = &self.rules;
        if rules.min_notice_minutes > 60 * 24 * 30 {
            problem("rules.min_notice_minutes".into(), "at most 30 days");
        }
        if !(1..=365).contains(&rules.horizon_days) {
            problem("rules.horizon_days".into(), "1 to 365 days");
        }
        if !(5..=240).contains(&rules.slot_step_minutes) {
            problem("rules.slot_step_minutes".into(), "5 to 240 minutes");
        }
        if rules.hold_minutes > 60 {
            problem("rules.hold_minutes".into(), "0 (none) to 60 minutes");
        }
        if rules.beyond_horizon_days > 365 {
            problem("rules.beyond_horizon_days".into(), "0 (none) to 365 days");
        }
        for (i, method) in self.payment_methods.iter().enumerate() {
            match method {
                PaymentMethod::BankTransfer { details } if details.trim().is_empty() => {
                    problem(format!("payment_methods[{i}].details"), "must not be empty")
                }
                PaymentMethod::PaymentLink { url } if !url.starts_with("https://") => problem(
                    format!("payment_methods[{i}].url"),
                    "must be an https:// link",
                ),
                _ => {}
            }
        }
        if self.flow.ask_payment && self.payment_methods.is_empty() {
            problem(
                "payment_methods".into(),
                "at least one is needed when the flow asks for payment",
            );
        }
        for (i, reply) in self.keyword_replies.iter().enumerate() {
            if reply.keywords.is_empty() || reply.keywords.iter().any(|k| k.trim().is_empty()) {
                problem(
                    format!("keyword_replies[{i}].keywords"),
                    "non-empty keywords",
                );
            }
            if reply.reply.trim().is_empty() || reply.reply.chars().count() > 4096 {
                problem(
                    format!("keyword_replies[{i}].reply"),
                    "1 to 4096 characters",
                );
            }
        }
        if !(5..=60 * 24 * 7).contains(&self.flow.session_timeout_minutes) {
            problem("flow.session_timeout_minutes".into(), "5 minutes to 7 days");
        }
        let reminders = &self.messaging.reminders_before_minutes;
        if reminders.len() > 3 {
            problem(
                "messaging.reminders_before_minutes".into(),
                "at most 3 reminders",
            );
        }
        for (i, minutes) in reminders.iter().enumerate() {
            if !(15..=60 * 24 * 7).contains(minutes) {
                problem(
                    format!("messaging.reminders_before_minutes[{i}]"),
                    "15 minutes to 7 days",
                );
            }
        }
        if let Some(template) = &self.messaging.reminder_template {
            template.problems("messaging.reminder_template", &mut problem);
        }
        if let Some(template) = &self.messaging.follow_up_template {
            template.problems("messaging.follow_up_template", &mut problem);
        }
        if let Some(template) = &self.messaging.waitlist_template {
            template.problems("messaging.waitlist_template", &mut problem);
        }
        let texts = serde_json::to_value(&self.flow.texts).expect("texts serialize");
        for (name, text) in texts.as_object().expect("texts are an object") {
            let text = text.as_str().unwrap_or_default();
            let field = format!("flow.texts.{name}");
            if text.trim().is_empty() || text.chars().count() > 1024 {
                problem(field.clone(), "1 to 1024 characters");
            }
            if let Some(unknown) = unknown_placeholder(text) {
                problem(field, &format!("unknown placeholder {{{unknown}}}"));
            }
        }
        problems
    }
}

fn unknown_placeholder(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Some(name.to_owned());
        }
        rest = &after[close + 1..];
    }
    None
}

/// A one-line text a customer sees: something visible, no control characters.
fn shows_plainly(text: &str) -> bool {
    crate::values::is_visible(text) && !text.chars().any(char::is_control)
}

impl Service {
    pub fn problems(&self, prefix: &str) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let len = self.name.trim().chars().count();
        if !(1..=24).contains(&len) {
            // 24: the longest title a WhatsApp list row shows.
            problems.push(ConfigProblem {
                field: format!("{prefix}name"),
                message: "1 to 24 characters".into(),
            });
        } else if !shows_plainly(&self.name) {
            problems.push(ConfigProblem {
                field: format!("{prefix}name"),
                message: "something visible, no control characters".into(),
            });
        }
        if self
            .category
            .as_ref()
            .is_some_and(|c| !(1..=40).contains(&c.trim().chars().count()) || !shows_plainly(c))
        {
            problems.push(ConfigProblem {
                field: format!("{prefix}category"),
                message: "1 to 40 characters, something visible, no control characters".into(),
            });
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 72)
        {
            problems.push(ConfigProblem {
                field: format!("{prefix}description"),
                message: "at most 72 characters".into(),
            });
        }
        if self.buffer_minutes > 240 {
            problems.push(ConfigProblem {
                field: format!("{prefix}buffer_minutes"),
                message: "at most 240 minutes".into(),
            });
        }
        if !(1..=100).contains(&self.capacity) {
            problems.push(ConfigProblem {
                field: format!("{prefix}capacity"),
                message: "1 to 100".into(),
            });
        }
        problems
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum BotConfigCommand {
    Configure {
        expected_version: u32,
        settings: Box<BotSettings>,
    },
    AddService {
        expected_version: u32,
        service: Service,
    },
    UpdateService {
        expected_version: u32,
        service: Service,
    },
    RetireService {
        expected_version: u32,
        service_id: ServiceId,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum BotConfigEvent {
    BotConfigured {
        settings: Box<BotSettings>,
    },
    /// Schema v2: v1 carried flat `price_cents`, `currency` and `duration_minutes` (see
    /// `upcast`).
    ServiceAdded {
        service: Service,
    },
    ServiceUpdated {
        service: Service,
    },
    ServiceRetired {
        service_id: ServiceId,
    },
}

impl DomainEvent for BotConfigEvent {
    const STREAM_TYPE: &'static str = "bot_config";

    fn event_type(&self) -> &'static str {
        match self {
            Self::BotConfigured { .. } => "BotConfigured",
            Self::ServiceAdded { .. } => "ServiceAdded",
            Self::ServiceUpdated { .. } => "ServiceUpdated",
            Self::ServiceRetired { .. } => "ServiceRetired",
        }
    }

    fn schema_version(event_type: &str) -> u32 {
        match event_type {
            "ServiceAdded" => 2,
            _ => 1,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BotConfigState {
    /// How many events the stream holds: the version commands must name.
    pub version: u32,
    pub settings: Option<BotSettings>,
    pub services: BTreeMap<ServiceId, Service>,
}

impl BotConfigState {
    pub fn active_services(&self) -> impl Iterator<Item = &Service> {
        self.services.values().filter(|s| s.active)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BotConfigError {
    #[error("the configuration is at version {actual}, not {expected}: reload and edit again")]
    VersionMismatch { expected: u32, actual: u32 },
    #[error("the configuration has problems: {}", .0.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<ConfigProblem>),
    #[error("a service with this id exists")]
    ServiceExists,
    #[error("no such service")]
    UnknownService,
    #[error("the service is already retired")]
    AlreadyRetired,
}

pub struct BotConfig;

impl BotConfigState {
    /// A service's own problems, and staff it names that the business does not have.
    fn service_problems(&self, service: &Service) -> Vec<ConfigProblem> {
        let mut problems = service.problems("service.");
        let staff = self.settings.as_ref().map_or(&[][..], |s| &s.staff[..]);
        for (i, id) in service.staff.iter().enumerate() {
            if !staff.iter().any(|m| m.id == *id) {
                problems.push(ConfigProblem {
                    field: format!("service.staff[{i}]"),
                    message: "no member of the staff has this id".into(),
                });
            }
        }
        problems
    }
}

impl Decider for BotConfig {
    type State = BotConfigState;
    type Command = BotConfigCommand;
    type Event = BotConfigEvent;
    type Error = BotConfigError;

    fn decide(
        state: &BotConfigState,
        command: BotConfigCommand,
    ) -> Result<Vec<BotConfigEvent>, BotConfigError> {
        use BotConfigCommand as C;
        // What is sent is judged before the version it expects: a client told that its service
        // is invalid fixes it, where one told only that the configuration moved on would read
        // it again and send the same invalid service.
        let problems = match &command {
            C::Configure { settings, .. } => settings.problems(),
            C::AddService { service, .. } | C::UpdateService { service, .. } => {
                state.service_problems(service)
            }
            C::RetireService { .. } => Vec::new(),
        };
        if !problems.is_empty() {
            return Err(BotConfigError::Invalid(problems));
        }
        let expected = match &command {
            C::Configure {
                expected_version, ..
            }
            | C::AddService {
                expected_version, ..
            }
            | C::UpdateService {
                expected_version, ..
            }
            | C::RetireService {
                expected_version, ..
            } => *expected_version,
        };
        if expected != state.version {
            return Err(BotConfigError::VersionMismatch {
                expected,
                actual: state.version,
            });
        }
        match command {
            C::Configure { settings, .. } => Ok(vec![BotConfigEvent::BotConfigured { settings }]),
            C::AddService { service, .. } => {
                if state.services.contains_key(&service.id) {
                    return Err(BotConfigError::ServiceExists);
                }
                Ok(vec![BotConfigEvent::ServiceAdded { service }])
            }
            C::UpdateService { service, .. } => {
                if !state.services.contains_key(&service.id) {
                    return Err(BotConfigError::UnknownService);
                }
                Ok(vec![BotConfigEvent::ServiceUpdated { service }])
            }
            C::RetireService { service_id, .. } => match state.services.get(&service_id) {
                None => Err(BotConfigError::UnknownService),
                Some(s) if !s.active => Err(BotConfigError::AlreadyRetired),
                Some(_) => Ok(vec![BotConfigEvent::ServiceRetired { service_id }]),
            },
        }
    }

    fn evolve(mut state: BotConfigState, event: &BotConfigEvent) -> BotConfigState {
        state.version += 1;
        match event {
            BotConfigEvent::BotConfigured { settings } => {
                state.settings = Some(settings.as_ref().clone())
            }
            BotConfigEvent::ServiceAdded { service }
            | BotConfigEvent::ServiceUpdated { service } => {
                state.services.insert(service.id, service.clone());
            }
            BotConfigEvent::ServiceRetired { service_id } => {
                if let Some(s) = state.services.get_mut(service_id) {
                    s.active = false;
                }
            }
        }
        state
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::decider::scenario::given;
    use crate::event::assert_round_trips;

    pub fn range(open: &str, close: &str) -> TimeRange {
        TimeRange {
            open: LocalTime::parse(open).unwrap(),
            close: LocalTime::parse(close).unwrap(),
        }
    }

    /// Mon–Fri 09:00–13:00 and 14:00–18:00, Saturday 10:00–14:00, Madrid.
    pub fn settings() -> BotSettings {
        let weekday = vec![range("09:00", "13:00"), range("14:00", "18:00")];
        BotSettings {
            time_zone: IanaTimeZone::parse("Europe/Madrid").unwrap(),
            hours: OpeningHours {
                monday: weekday.clone(),
                tuesday: weekday.clone(),
                wednesday: weekday.clone(),
                thursday: weekday.clone(),
                friday: weekday,
                saturday: vec![range("10:00", "14:00")],
                sunday: vec![],
            },
            closures: vec![],
            rules: BookingRules::default(),
            payment_methods: vec![
                PaymentMethod::Cash,
                PaymentMethod::BankTransfer {
                    details: "IBAN ES00 0000".into(),
                },
            ],
            keyword_replies: vec![],
            flow: FlowSettings::default(),
            messaging: Messaging::default(),
            staff: vec![],
            privacy: Privacy::default(),
        }
    }

    pub fn haircut() -> Service {
        Service {
            id: ServiceId::from_uuid(uuid::Uuid::from_u128(7)),
            name: "Haircut".into(),
            description: Some("Wash, cut and dry".into()),
            price: Money::parse(2500, "EUR").unwrap(),
            duration: ServiceDuration::parse(45).unwrap(),
            buffer_minutes: 15,
            capacity: 1,
            category: Some("Hair".into()),
            active: true,
            staff: vec![],
        }
    }

    #[test]
    fn the_texts_a_business_did_not_write_are_its_languages_defaults() {
        let flow: FlowSettings = serde_json::from_value(serde_json::json!({
            "ask_name": true, "ask_payment": false, "session_timeout_minutes": 60,
            "language": "es", "texts": {"greeting": "¡Buenas! Esto es {business_name}."},
        }))
        .unwrap();
        assert_eq!(flow.texts.greeting, "¡Buenas! Esto es {business_name}.");
        assert_eq!(flow.texts.choose_service, "¿Qué servicio quieres?");
        let english: FlowSettings = serde_json::from_value(serde_json::json!({
            "ask_name": true, "ask_payment": false, "session_timeout_minutes": 60,
        }))
        .unwrap();
        assert_eq!(
            english,
            FlowSettings {
                ask_payment: false,
                ..FlowSettings::default()
            }
        );
        // What is stored reads back the same.
        let again: FlowSettings =
            serde_json::from_value(serde_json::to_value(&flow).unwrap()).unwrap();
        assert_eq!(again, flow);
    }

    #[test]
    fn a_valid_configuration_is_recorded_and_bumps_the_version() {
        given::<BotConfig>(&[])
            .when(BotConfigCommand::Configure {
                expected_version: 0,
                settings: Box::new(settings()),
            })
            .then_expect(&[BotConfigEvent::BotConfigured {
                settings: Box::new(settings()),
            }]);
        let state = BotConfig::fold(&[BotConfigEvent::BotConfigured {
            settings: Box::new(settings()),
        }]);
        assert_eq!(state.version, 1);
    }

    #[test]
    fn a_stale_version_conflicts() {
        given::<BotConfig>(&[BotConfigEvent::BotConfigured {
            settings: Box::new(settings()),
        }])
        .when(BotConfigCommand::Configure {
            expected_version: 0,
            settings: Box::new(settings()),
        })
        .then_expect_error(BotConfigError::VersionMismatch {
            expected: 0,
            actual: 1,
        });
    }

    #[test]
    fn an_invalid_change_is_invalid_whatever_version_it_expects() {
        let mut bad = settings();
        bad.rules.slot_step_minutes = 1;
        let problems = bad.problems();
        given::<BotConfig>(&[BotConfigEvent::BotConfigured {
            settings: Box::new(settings()),
        }])
        .when(BotConfigCommand::Configure {
            expected_version: 0,
            settings: Box::new(bad),
        })
        .then_expect_error(BotConfigError::Invalid(problems));
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut bad = settings();
        bad.hours.monday = vec![
            range("12:00", "10:00"),
            range("09:00", "11:00"),
            range("10:30", "12:00"),
        ];
        bad.rules.slot_step_minutes = 1;
        bad.flow.texts.greeting = "Hello {customer}".into();
        bad.payment_methods = vec![PaymentMethod::PaymentLink {
            url: "http://pay.example".into(),
        }];
        let problems = bad.problems();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "hours.monday[0]",
                "hours.monday",
                "rules.slot_step_minutes",
                "payment_methods[0].url",
                "flow.texts.greeting"
            ]
        );
        assert!(problems[4].message.contains("{customer}"));
        given::<BotConfig>(&[])
            .when(BotConfigCommand::Configure {
                expected_version: 0,
                settings: Box::new(bad),
            })
            .then_expect_error(BotConfigError::Invalid(problems));
    }

    #[test]
    fn services_are_added_updated_and_retired() {
        let added = BotConfigEvent::ServiceAdded { service: haircut() };
        given::<BotConfig>(&[])
            .when(BotConfigCommand::AddService {
                expected_version: 0,
                service: haircut(),
            })
            .then_expect(std::slice::from_ref(&added));
        given::<BotConfig>(std::slice::from_ref(&added))
            .when(BotConfigCommand::AddService {
                expected_version: 1,
                service: haircut(),
            })
            .then_expect_error(BotConfigError::ServiceExists);
        let mut pricier = haircut();
        pricier.price = Money::parse(3000, "EUR").unwrap();
        given::<BotConfig>(std::slice::from_ref(&added))
            .when(BotConfigCommand::UpdateService {
                expected_version: 1,
                service: pricier.clone(),
            })
            .then_expect(&[BotConfigEvent::ServiceUpdated { service: pricier }]);
        let retired = BotConfigEvent::ServiceRetired {
            service_id: haircut().id,
        };
        given::<BotConfig>(std::slice::from_ref(&added))
            .when(BotConfigCommand::RetireService {
                expected_version: 1,
                service_id: haircut().id,
            })
            .then_expect(std::slice::from_ref(&retired));
        given::<BotConfig>(&[added.clone(), retired.clone()])
            .when(BotConfigCommand::RetireService {
                expected_version: 2,
                service_id: haircut().id,
            })
            .then_expect_error(BotConfigError::AlreadyRetired);
        let state = BotConfig::fold(&[added, retired]);
        assert_eq!(state.active_services().count(), 0);
    }

    #[test]
    fn unknown_services_cannot_be_updated_or_retired() {
        given::<BotConfig>(&[])
            .when(BotConfigCommand::UpdateService {
                expected_version: 0,
                service: haircut(),
            })
            .then_expect_error(BotConfigError::UnknownService);
        given::<BotConfig>(&[])
            .when(BotConfigCommand::RetireService {
                expected_version: 0,
                service_id: haircut().id,
            })
            .then_expect_error(BotConfigError::UnknownService);
    }

    #[test]
    fn a_staff_member_s_id_is_one_an_agenda_can_have() {
        let mut with_staff = settings();
        with_staff.staff = serde_json::from_value(serde_json::json!([
            {"id": "ana", "name": "Ana"},
            {"id": "Ana María", "name": "Ana María"},
            {"id": "", "name": "Nobody"},
        ]))
        .unwrap();
        let fields: Vec<String> = with_staff.problems().into_iter().map(|p| p.field).collect();
        assert_eq!(fields, ["staff[1].id", "staff[2].id"]);
    }

    #[test]
    fn a_service_name_must_fit_a_whatsapp_list_row() {
        let mut long = haircut();
        long.name = "Deluxe wash, cut, colour and style".into();
        given::<BotConfig>(&[])
            .when(BotConfigCommand::AddService {
                expected_version: 0,
                service: long,
            })
            .then_expect_error(BotConfigError::Invalid(vec![ConfigProblem {
                field: "service.name".into(),
                message: "1 to 24 characters".into(),
            }]));
    }

    #[test]
    fn events_round_trip_through_the_store_format() {
        assert_round_trips(&[
            BotConfigEvent::BotConfigured {
                settings: Box::new(settings()),
            },
            BotConfigEvent::ServiceAdded { service: haircut() },
            BotConfigEvent::ServiceUpdated { service: haircut() },
            BotConfigEvent::ServiceRetired {
                service_id: haircut().id,
            },
        ]);
    }
}
