//! A business's past, for the demo: months of appointments imported into the event store as
//! history (`EventStore::import`, each event at the time it happened), so that analytics and
//! the booking lists have something to show on the first `just up`.
//!
//! Only bookings: every one made, confirmed and then completed, missed or cancelled, on the
//! business's services and staff, by returning and new customers, over WhatsApp, the desk and
//! the API. Conversations are not imported: their replies would be the sender's to deliver.
//! The same seed gives the same past.

use anyhow::Context as _;
use chrono::{DateTime, Datelike as _, Duration, Utc, Weekday};
use domain::agenda::Interval;
use domain::booking::{BookingEvent, Channel, Customer, Party};
use domain::event::{DomainEvent as _, encode};
use domain::ids::{BookingId, ResourceId, ServiceId};
use domain::values::{Money, PhoneNumber};
use eventstore::{EventMetadata, EventStore, NewEvent, StreamRef};
use uuid::Uuid;

/// A service the past is made of.
#[derive(Debug, Clone)]
pub struct Service {
    pub id: Uuid,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub minutes: i64,
    /// Who does it; `default` when nobody in particular.
    pub staff: Vec<String>,
    /// How often it is booked, relative to the others.
    pub weight: u64,
}

const NAMES: [&str; 12] = [
    "Lucía", "Marta", "Javier", "Carmen", "Pablo", "Elena", "Sofía", "Diego", "Laura", "Hugo",
    "Irene", "Álvaro",
];

/// SplitMix64: small, fast, and the same sequence for the same seed.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn percent(&mut self) -> u64 {
        self.below(100)
    }
}

/// Imports `days` days of appointments before `now` for `tenant`; returns how many.
pub async fn import(
    store: &EventStore,
    tenant: Uuid,
    services: &[Service],
    days: i64,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    anyhow::ensure!(!services.is_empty(), "no services to make a past of");
    let mut dice = Dice(tenant.as_u128() as u64);
    let total_weight: u64 = services.iter().map(|s| s.weight.max(1)).sum();
    let mut sealer = app::events::PersonalSealer::new(tenant);
    let mut conn = store.pool().acquire().await?;
    let mut count = 0;
    for back in (1..=days).rev() {
        let day = (now - Duration::days(back)).date_naive();
        let busy = match day.weekday() {
            Weekday::Sun => 2,
            Weekday::Fri | Weekday::Sat => 9,
            _ => 5,
        };
        for _ in 0..busy + dice.below(4) {
            let mut pick = dice.below(total_weight);
            let service = services
                .iter()
                .find(|s| {
                    let w = s.weight.max(1);
                    if pick < w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .unwrap_or(&services[0]);
            let resource = if service.staff.is_empty() {
                "default".to_owned()
            } else {
                service.staff[dice.below(service.staff.len() as u64) as usize].clone()
            };
            // Appointments from 08:00 to 17:30 UTC (09:00 to 19:30 in Madrid), on the half hour.
            let start = day.and_hms_opt(8, 0, 0).context("a time of day")?.and_utc()
                + Duration::minutes(30 * dice.below(20) as i64);
            let customer = dice.below(400);
            let events = booking_history(
                &mut dice, tenant, service, &resource, start, customer, count,
            )?;
            let id = events.booking_id;
            let stream = StreamRef::new(BookingEvent::STREAM_TYPE, id.to_string());
            let mut events = events.events;
            for (event, _) in &mut events {
                sealer
                    .seal(&mut conn, &stream, &event.event_type, &mut event.payload)
                    .await?;
            }
            // The import's customers met for the first time (nobody else writes meanwhile).
            if let Err(subject) = sealer.save_fresh(&mut conn).await? {
                anyhow::bail!("customer {subject} got another key while importing");
            }
            store
                .import(tenant, &stream, events)
                .await
                .with_context(|| format!("failed to import booking {id}"))?;
            count += 1;
        }
    }
    Ok(count)
}

struct History {
    booking_id: BookingId,
    events: Vec<(NewEvent, DateTime<Utc>)>,
}

fn booking_history(
    dice: &mut Dice,
    tenant: Uuid,
    service: &Service,
    resource: &str,
    start: DateTime<Utc>,
    customer: u64,
    n: usize,
) -> anyhow::Result<History> {
    // Ids from the tenant and the booking's number: the same past twice is the same streams.
    let id = |what: &str| Uuid::new_v5(&tenant, format!("history/{n}/{what}").as_bytes());
    let booking_id = BookingId::from_uuid(id("booking"));
    let booked_at = start - Duration::hours(2 + dice.below(120) as i64);
    let end = start + Duration::minutes(service.minutes);
    let channel = match dice.percent() {
        0..65 => Channel::WhatsApp,
        65..95 => Channel::Dashboard,
        _ => Channel::Api,
    };
    let requested = BookingEvent::AppointmentRequested {
        booking_id,
        reference: format!("H{n:05}"),
        service_id: ServiceId::from_uuid(service.id),
        service_name: service.name.clone(),
        price: Money::parse(service.price_minor, &service.currency)?,
        resource: ResourceId::parse(resource)?,
        appointment: Interval::new(start, end).context("an appointment ends after it starts")?,
        customer: Customer {
            phone: PhoneNumber::parse(&format!("+34611{:06}", 100 + customer))?,
            name: Some(NAMES[customer as usize % NAMES.len()].to_owned()),
        },
        channel,
    };
    let (outcome, at) = match dice.percent() {
        0..78 => (
            BookingEvent::AppointmentCompleted,
            end + Duration::minutes(5),
        ),
        78..84 => (
            BookingEvent::AppointmentMarkedNoShow,
            start + Duration::minutes(20),
        ),
        roll => {
            let by = if roll < 95 {
                Party::Customer
            } else {
                Party::Business
            };
            // A third of them on the day, the rest a day or more before.
            let before = if dice.below(3) == 0 {
                Duration::hours(3)
            } else {
                Duration::hours(24 + dice.below(48) as i64)
            };
            let at = (start - before).max(booked_at + Duration::minutes(30));
            (BookingEvent::AppointmentCancelled { by, reason: None }, at)
        }
    };
    let events = [
        (requested, booked_at),
        (BookingEvent::AppointmentConfirmed, booked_at),
        (outcome, at),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (event, at))| {
        let encoded = encode(&event);
        let recorded = NewEvent {
            event_id: id(&i.to_string()),
            event_type: encoded.event_type.to_owned(),
            schema_version: encoded.schema_version,
            payload: encoded.payload,
            metadata: EventMetadata {
                actor: Some("system:history-import".into()),
                ..EventMetadata::default()
            },
        };
        (recorded, at)
    })
    .collect();
    Ok(History { booking_id, events })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> Vec<Service> {
        vec![
            Service {
                id: Uuid::new_v4(),
                name: "Haircut".into(),
                price_minor: 2500,
                currency: "EUR".into(),
                minutes: 30,
                staff: vec!["ana".into(), "luis".into()],
                weight: 3,
            },
            Service {
                id: Uuid::new_v4(),
                name: "Colour".into(),
                price_minor: 7000,
                currency: "EUR".into(),
                minutes: 90,
                staff: vec![],
                weight: 1,
            },
        ]
    }

    #[tokio::test]
    async fn a_past_is_whole_bookings_at_the_times_they_happened_before_now() {
        let db = testkit::TestDb::new().await;
        let store = EventStore::new(db.app_pool().await);
        let tenant = Uuid::new_v4();
        let now = Utc::now();
        let imported = import(&store, tenant, &services(), 14, now).await.unwrap();
        assert!((14 * 2..=14 * 13).contains(&imported), "{imported}");

        // The gap-free reader shows a transaction once older ones elsewhere in the cluster
        // (other tests') have ended.
        let mut events = Vec::new();
        for _ in 0..200 {
            events = store
                .read_tenant(tenant, eventstore::Position::START, 10_000)
                .await
                .unwrap();
            if events.len() >= imported * 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(
            events.len(),
            imported * 3,
            "requested, confirmed, an outcome"
        );
        for booking in events.chunks(3) {
            let [requested, confirmed, outcome] = booking else {
                unreachable!()
            };
            assert_eq!(requested.event_type, "AppointmentRequested");
            assert_eq!(confirmed.event_type, "AppointmentConfirmed");
            assert!(
                [
                    "AppointmentCompleted",
                    "AppointmentMarkedNoShow",
                    "AppointmentCancelled"
                ]
                .contains(&outcome.event_type.as_str()),
                "{}",
                outcome.event_type
            );
            assert!(requested.recorded_at < outcome.recorded_at);
            assert!(outcome.recorded_at < now);
            let start: DateTime<Utc> = requested.payload["appointment"]["start"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(start > now - Duration::days(15) && start < now, "{start}");
            assert!(
                requested.recorded_at < start,
                "booked before the appointment"
            );
        }
        // The same tenant's past is the same past.
        let again = import(&store, tenant, &services(), 14, now).await;
        assert!(
            again.is_err(),
            "its streams exist: nothing is imported twice"
        );
    }
}
