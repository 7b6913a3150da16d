//! Analytics (`analytics.*`, kept by the analytics consumer): how a business is doing over a
//! range of its own local days, and the platform-wide view for the operator.
//!
//! Days are the tenant's (its time zone as the tenant read model has it); a range is at most
//! 366 days. A consistency token waits for the analytics consumer as well as the projections.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use chrono::{DateTime, NaiveDate, Utc};
use domain::access::Permission;
use domain::bot_config::{BotSettings, StaffMember};
use eventstore::Position;
use platform::answers::{BadParameter, ConsistencyToken, Forbidden, TenantReader, Unauthenticated};
use platform::auth::Operator;
use platform::params::{Params, from_text};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use sqlx::types::Json as Jsonb;
use uuid::Uuid;

use crate::AppState;
use crate::reader::Reader;

/// The longest range one read covers.
const MAX_DAYS: i64 = 366;
/// The range when none is asked for: the last 30 days, today included.
const DEFAULT_DAYS: i64 = 30;

/// A caller of an analytics read: a [`Reader`] allowed to read usage, whose consistency token
/// (if any) the analytics consumer has reached too.
pub struct AnalyticsReader(Reader);

impl FromRequestParts<AppState> for AnalyticsReader {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Problem> {
        let reader = Reader::from_request_parts(parts, app).await?;
        reader.require(Permission::ReadUsage)?;
        if let Some(token) = reader.consistency {
            wait_for_analytics(app, token).await?;
        }
        Ok(Self(reader))
    }
}

/// Waits until the analytics consumer's checkpoint is at or past `token` (the projections are
/// already there: the [`Reader`] waited for them, so the token is a genuine one).
async fn wait_for_analytics(app: &AppState, token: Position) -> Result<(), Problem> {
    let deadline = Instant::now() + app.max_wait;
    loop {
        let reached = sqlx::query_scalar!(
            r#"select exists(select from analytics.checkpoints
                  where (transaction_id, global_position) >= ($1::text::xid8, $2)) as "reached!""#,
            token.transaction_id.to_string(),
            token.global_position as i64
        )
        .fetch_one(&app.pool)
        .await?;
        if reached {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Problem::unavailable(
                "analytics have not caught up with this consistency token yet",
                1,
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A local day, `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy)]
pub struct Day(pub NaiveDate);

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_text(
            d,
            |s| platform::params::full_date(s).map(Day),
            "is a date, YYYY-MM-DD",
        )
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    /// The first local day (YYYY-MM-DD); 29 days before `to` by default.
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<Day>,
    /// The last local day, included (YYYY-MM-DD); today by default.
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<Day>,
}

/// The days a read covers, in a time zone.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Range {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The IANA zone the days are in (the business's).
    pub time_zone: String,
}

impl RangeParams {
    /// The range, checked, in `time_zone` (whose today `today` is).
    fn range(&self, time_zone: String, today: NaiveDate) -> Result<Range, Problem> {
        let to = self.to.map(|d| d.0).unwrap_or(today);
        let from = self
            .from
            .map(|d| d.0)
            .unwrap_or(to - chrono::Duration::days(DEFAULT_DAYS - 1));
        if from > to {
            return Err(Problem::invalid("from", "is after to"));
        }
        if (to - from).num_days() >= MAX_DAYS {
            return Err(Problem::invalid(
                "to",
                format!("is more than {MAX_DAYS} days after from"),
            ));
        }
        Ok(Range {
            from,
            to,
            time_zone,
        })
    }
}

/// The read's transaction (the tenant's, read-only) and its range in the tenant's zone.
async fn open(
    app: &AppState,
    reader: &Reader,
    params: &RangeParams,
) -> Result<(sqlx::Transaction<'static, sqlx::Postgres>, Range), Problem> {
    let mut tx = reader.begin(app).await?;
    let (tz, today) = tenant_zone(&mut tx).await?;
    let range = params.range(tz, today)?;
    Ok((tx, range))
}

/// The tenant's zone and today there (UTC before the tenant is projected).
async fn tenant_zone(conn: &mut PgConnection) -> Result<(String, NaiveDate), Problem> {
    let row = sqlx::query!(
        r#"select z.tz as "tz!", (now() at time zone z.tz)::date as "today!"
             from (select coalesce((select time_zone from rm_tenants), 'UTC') as tz) z"#
    )
    .fetch_one(conn)
    .await?;
    Ok((row.tz, row.today))
}

/// Money by currency (a business may have priced services in more than one).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Revenue {
    pub currency: String,
    /// Appointments in the range that were not cancelled, at their booked price.
    pub expected_minor: i64,
    /// Appointments in the range that took place (completed).
    pub realised_minor: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Appointments {
    /// Appointments whose time falls in the range, whatever became of them.
    pub total: i64,
    /// Still to come, or past and not marked.
    pub booked: i64,
    pub completed: i64,
    pub no_show: i64,
    pub cancelled: i64,
    /// Cancelled less than 24 hours before the appointment.
    pub cancelled_late: i64,
    pub cancelled_by_customer: i64,
    pub cancelled_by_business: i64,
    /// cancelled / total (0 when there are none).
    pub cancellation_rate: f64,
    /// no_show / (completed + no_show).
    pub no_show_rate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BookingsMade {
    /// Bookings made on a day of the range (whatever their appointment's day).
    pub total: i64,
    pub whatsapp: i64,
    pub dashboard: i64,
    pub api: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Customers {
    /// Customers with an appointment in the range.
    pub total: i64,
    /// Of those, the ones who had booked before (an earlier appointment).
    pub returning: i64,
}

/// WhatsApp conversations started in the range, and how far they went.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Funnel {
    pub conversations: i64,
    /// Were offered times to choose from.
    pub reached_time_choice: i64,
    /// Ended with a booking within 7 days of the first message.
    pub booked: i64,
    /// Whose booking took place.
    pub attended: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BotPerformance {
    /// Conversations the bot saw through without handing them to a person.
    pub finished_by_bot: i64,
    pub handed_off: i64,
    /// finished_by_bot / conversations.
    pub finished_by_bot_share: f64,
    /// From the customer's first message reaching the platform to Meta accepting the first
    /// reply, over the range's conversations that had one.
    pub first_reply_p50_ms: Option<f64>,
    pub first_reply_p90_ms: Option<f64>,
    /// Conversations whose customer was handed to a person (asked for one, or the bot gave
    /// up); a business taking a conversation over on its own keeps nobody waiting.
    pub waited_for_a_person: i64,
    /// From the handoff to the first staff reply, over those that had one.
    pub human_first_reply_p50_ms: Option<f64>,
    pub human_first_reply_p90_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Messages {
    pub inbound: i64,
    pub outbound: i64,
    /// The business's plan's limit on messages (in and out) per calendar month, as the plan
    /// stands today (`GET /v1/billing` has this month's use of it); none when the plan has no
    /// limit.
    pub monthly_limit: Option<u32>,
}

/// A service's or a staff member's share of the range's appointments.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Breakdown {
    /// The service's id, or the resource (`default`, or a staff member's id).
    pub key: String,
    /// The service's name (the resource's id again for a resource).
    pub name: String,
    pub appointments: i64,
    pub completed: i64,
    pub cancelled: i64,
    pub no_show: i64,
    /// Booked minutes of appointments not cancelled.
    pub booked_minutes: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Overview {
    pub range: Range,
    pub bookings_made: BookingsMade,
    pub appointments: Appointments,
    pub revenue: Vec<Revenue>,
    pub customers: Customers,
    pub funnel: Funnel,
    pub bot: BotPerformance,
    pub messages: Messages,
    pub utilisation: Utilisation,
    pub by_service: Vec<Breakdown>,
    pub by_resource: Vec<Breakdown>,
}

/// How much of the time on offer was booked.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Utilisation {
    /// Minutes of the range's appointments not cancelled.
    pub booked_minutes: i64,
    /// Minutes each staff member (or the business, without staff) works over the range, by
    /// the hours, days off and closures in force each day (a day before the first
    /// configuration known takes the first).
    pub open_minutes: i64,
    /// booked_minutes / open_minutes; none before any hours are configured.
    pub share: Option<f64>,
}

/// Minutes of work on offer over `range`: each staff member's working hours (the business's,
/// for a business without staff), less days off and closures, under the configuration in
/// force each day. `hours` are the configurations with the local day each applies from, oldest
/// first; a day before the first uses the first (the history imported from before the
/// business configured the platform).
fn open_minutes(hours: &[(NaiveDate, BotSettings)], range: &Range) -> i64 {
    range
        .from
        .iter_days()
        .take_while(|day| *day <= range.to)
        .map(|day| {
            hours
                .iter()
                .rev()
                .find(|(from, _)| *from <= day)
                .or(hours.first())
                .map(|(_, settings)| minutes_on(settings, day))
                .unwrap_or(0)
        })
        .sum()
}

/// Minutes of work `settings` offer on `day`.
fn minutes_on(settings: &BotSettings, day: NaiveDate) -> i64 {
    let members: Vec<Option<&StaffMember>> = if settings.staff.is_empty() {
        vec![None]
    } else {
        settings.staff.iter().map(Some).collect()
    };
    members
        .iter()
        .flat_map(|m| domain::availability::working_intervals(settings, *m, day))
        .map(|(_, interval)| (interval.end - interval.start).num_minutes())
        .sum()
}

fn ratio(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// `GET /v1/analytics/overview?from=&to=`.
#[utoipa::path(
    get,
    path = "/v1/analytics/overview",
    tag = "analytics",
    summary = "How the business did over a range of its days",
    description = "Bookings made, appointments and what became of them, revenue, returning customers, the WhatsApp funnel, the bot's performance, messages, utilisation (booked against working minutes), and each service's and staff member's share. Owners and admins (read_usage).",
    params(ConsistencyToken, RangeParams),
    responses(
        (status = 200, description = "The range's figures", body = Overview),
        TenantReader, Forbidden
    ),
    security(("bearer" = []))
)]
pub async fn overview(
    State(app): State<AppState>,
    AnalyticsReader(reader): AnalyticsReader,
    Params(params): Params<RangeParams>,
) -> Result<Json<Overview>, Problem> {
    let (mut tx, range) = open(&app, &reader, &params).await?;
    let (from, to, tz) = (range.from, range.to, range.time_zone.as_str());

    let made = sqlx::query!(
        r#"select count(*) as "total!",
                  count(*) filter (where channel = 'whatsapp') as "whatsapp!",
                  count(*) filter (where channel = 'dashboard') as "dashboard!",
                  count(*) filter (where channel = 'api') as "api!"
             from analytics.bookings
            where booked_at >= ($1::date::timestamp at time zone $3)
              and booked_at < (($2::date + 1)::timestamp at time zone $3)"#,
        from,
        to,
        tz
    )
    .fetch_one(&mut *tx)
    .await?;

    let a = sqlx::query!(
        r#"select count(*) as "total!",
                  count(*) filter (where outcome = 'booked') as "booked!",
                  count(*) filter (where outcome = 'completed') as "completed!",
                  count(*) filter (where outcome = 'no_show') as "no_show!",
                  count(*) filter (where outcome = 'cancelled') as "cancelled!",
                  count(*) filter (where outcome = 'cancelled'
                                     and cancelled_at > starts_at - interval '24 hours') as "late!",
                  count(*) filter (where cancelled_by = 'customer') as "by_customer!",
                  count(*) filter (where cancelled_by = 'business') as "by_business!",
                  coalesce(sum(extract(epoch from ends_at - starts_at) / 60)
                      filter (where outcome <> 'cancelled'), 0)::bigint as "booked_minutes!",
                  count(distinct customer_phone) as "customers!",
                  count(distinct customer_phone) filter (where exists (
                      select from analytics.bookings earlier
                       where earlier.tenant_id = b.tenant_id
                         and earlier.customer_phone = b.customer_phone
                         and earlier.starts_at < b.starts_at
                         and earlier.outcome <> 'cancelled')) as "returning!"
             from analytics.bookings b
            where starts_at >= ($1::date::timestamp at time zone $3)
              and starts_at < (($2::date + 1)::timestamp at time zone $3)"#,
        from,
        to,
        tz
    )
    .fetch_one(&mut *tx)
    .await?;

    let revenue = sqlx::query_as!(
        Revenue,
        r#"select currency,
                  coalesce(sum(price_minor) filter (where outcome <> 'cancelled'), 0)::bigint
                      as "expected_minor!",
                  coalesce(sum(price_minor) filter (where outcome = 'completed'), 0)::bigint
                      as "realised_minor!"
             from analytics.bookings
            where starts_at >= ($1::date::timestamp at time zone $3)
              and starts_at < (($2::date + 1)::timestamp at time zone $3)
            group by currency order by currency"#,
        from,
        to,
        tz
    )
    .fetch_all(&mut *tx)
    .await?;

    let s = sqlx::query!(
        r#"select count(*) as "conversations!",
                  count(*) filter (where reached_time) as "reached_time!",
                  count(*) filter (where s.booking_id is not null) as "booked!",
                  count(*) filter (where b.outcome = 'completed') as "attended!",
                  count(*) filter (where handed_off) as "handed_off!",
                  percentile_cont(0.5) within group (
                      order by extract(epoch from first_reply_at - started_at) * 1000) as p50,
                  percentile_cont(0.9) within group (
                      order by extract(epoch from first_reply_at - started_at) * 1000) as p90,
                  count(*) filter (where waiting_since is not null) as "waited!",
                  percentile_cont(0.5) within group (
                      order by extract(epoch from staff_replied_at - waiting_since) * 1000)
                      as human_p50,
                  percentile_cont(0.9) within group (
                      order by extract(epoch from staff_replied_at - waiting_since) * 1000)
                      as human_p90
             from analytics.sessions s
             left join analytics.bookings b
               on b.tenant_id = s.tenant_id and b.booking_id = s.booking_id
            where s.started_at >= ($1::date::timestamp at time zone $3)
              and s.started_at < (($2::date + 1)::timestamp at time zone $3)"#,
        from,
        to,
        tz
    )
    .fetch_one(&mut *tx)
    .await?;

    let m = sqlx::query!(
        r#"select coalesce(sum(inbound), 0)::bigint as "inbound!",
                  coalesce(sum(outbound), 0)::bigint as "outbound!",
                  (select plan from rm_billing) as plan
             from analytics.messages_daily where day between $1 and $2"#,
        from,
        to
    )
    .fetch_one(&mut *tx)
    .await?;
    let messages = Messages {
        inbound: m.inbound,
        outbound: m.outbound,
        monthly_limit: m
            .plan
            .as_deref()
            .and_then(domain::plan::Plan::parse)
            .and_then(|p| p.spec().limits.messages),
    };

    let mut hours: Vec<(NaiveDate, BotSettings)> = sqlx::query!(
        r#"select (since at time zone $1)::date as "from!",
                  settings as "settings: Jsonb<BotSettings>"
             from analytics.hours order by since"#,
        &range.time_zone
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.from, r.settings.0))
    .collect();
    if hours.is_empty() {
        // Facts from before the consumer kept hours (until a rebuild): today's configuration.
        let current = sqlx::query_scalar!(
            r#"select settings as "settings: Jsonb<BotSettings>" from rm_bot_config"#
        )
        .fetch_optional(&mut *tx)
        .await?
        .flatten();
        hours.extend(current.map(|s| (range.from, s.0)));
    }
    let open = open_minutes(&hours, &range);

    let by_service = breakdown(&mut tx, &range, Dimension::Service).await?;
    let by_resource = breakdown(&mut tx, &range, Dimension::Resource).await?;

    let finished_by_bot = s.conversations - s.handed_off;
    Ok(Json(Overview {
        bookings_made: BookingsMade {
            total: made.total,
            whatsapp: made.whatsapp,
            dashboard: made.dashboard,
            api: made.api,
        },
        appointments: Appointments {
            total: a.total,
            booked: a.booked,
            completed: a.completed,
            no_show: a.no_show,
            cancelled: a.cancelled,
            cancelled_late: a.late,
            cancelled_by_customer: a.by_customer,
            cancelled_by_business: a.by_business,
            cancellation_rate: ratio(a.cancelled, a.total),
            no_show_rate: ratio(a.no_show, a.completed + a.no_show),
        },
        revenue,
        customers: Customers {
            total: a.customers,
            returning: a.returning,
        },
        funnel: Funnel {
            conversations: s.conversations,
            reached_time_choice: s.reached_time,
            booked: s.booked,
            attended: s.attended,
        },
        bot: BotPerformance {
            finished_by_bot,
            handed_off: s.handed_off,
            finished_by_bot_share: ratio(finished_by_bot, s.conversations),
            first_reply_p50_ms: s.p50,
            first_reply_p90_ms: s.p90,
            waited_for_a_person: s.waited,
            human_first_reply_p50_ms: s.human_p50,
            human_first_reply_p90_ms: s.human_p90,
        },
        messages,
        utilisation: Utilisation {
            booked_minutes: a.booked_minutes,
            open_minutes: open,
            share: (open > 0).then(|| a.booked_minutes as f64 / open as f64),
        },
        by_service,
        by_resource,
        range,
    }))
}

/// What a breakdown groups appointments by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dimension {
    Service,
    Resource,
}

/// The range's appointments by service or by resource, the most booked first.
async fn breakdown(
    conn: &mut PgConnection,
    range: &Range,
    by: Dimension,
) -> Result<Vec<Breakdown>, Problem> {
    Ok(sqlx::query_as!(
        Breakdown,
        r#"select case when $4 then service_id::text else resource end as "key!",
                  max(case when $4 then service_name else resource end) as "name!",
                  count(*) as "appointments!",
                  count(*) filter (where outcome = 'completed') as "completed!",
                  count(*) filter (where outcome = 'cancelled') as "cancelled!",
                  count(*) filter (where outcome = 'no_show') as "no_show!",
                  coalesce(sum(extract(epoch from ends_at - starts_at) / 60)
                      filter (where outcome <> 'cancelled'), 0)::bigint as "booked_minutes!"
             from analytics.bookings
            where starts_at >= ($1::date::timestamp at time zone $3)
              and starts_at < (($2::date + 1)::timestamp at time zone $3)
            group by 1 order by 3 desc, 2"#,
        range.from,
        range.to,
        range.time_zone,
        by == Dimension::Service
    )
    .fetch_all(conn)
    .await?)
}

/// How a series is cut.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    #[default]
    Day,
    /// Weeks start on Monday.
    Week,
    Month,
}

impl Interval {
    fn unit(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesParams {
    /// The first local day (YYYY-MM-DD); 29 days before `to` by default.
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<Day>,
    /// The last local day, included (YYYY-MM-DD); today by default.
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<Day>,
    /// day (the default), week or month.
    #[param(value_type = Option<String>, pattern = "^(day|week|month)$")]
    pub interval: Option<Interval>,
}

/// One period of a series (periods with nothing in them are there, with zeros).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Point {
    /// The period's first local day (the first period may begin before the range: only the
    /// range's days are counted in it).
    pub start: NaiveDate,
    pub bookings_made: i64,
    pub appointments: i64,
    pub completed: i64,
    pub cancelled: i64,
    pub no_show: i64,
    pub messages_in: i64,
    pub messages_out: i64,
    pub revenue: Vec<Revenue>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Series {
    pub range: Range,
    pub interval: Interval,
    pub points: Vec<Point>,
}

impl Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.unit())
    }
}

/// `GET /v1/analytics/series?from=&to=&interval=`.
#[utoipa::path(
    get,
    path = "/v1/analytics/series",
    tag = "analytics",
    summary = "The range's figures period by period",
    description = "Bookings made (by the day they were made), appointments and their outcomes and revenue (by the appointment's day), messages, per local day, week or month. Owners and admins (read_usage).",
    params(ConsistencyToken, SeriesParams),
    responses(
        (status = 200, description = "One point a period", body = Series),
        TenantReader, Forbidden
    ),
    security(("bearer" = []))
)]
pub async fn series(
    State(app): State<AppState>,
    AnalyticsReader(reader): AnalyticsReader,
    Params(params): Params<SeriesParams>,
) -> Result<Json<Series>, Problem> {
    let days = RangeParams {
        from: params.from,
        to: params.to,
    };
    let (mut tx, range) = open(&app, &reader, &days).await?;
    let interval = params.interval.unwrap_or_default();
    let (from, to, tz, unit) = (
        range.from,
        range.to,
        range.time_zone.as_str(),
        interval.unit(),
    );

    let rows = sqlx::query!(
        r#"with periods as (
               select generate_series(date_trunc($4, $1::date::timestamp),
                                      $2::date::timestamp, ('1 ' || $4)::interval)::date as start),
           made as (
               select date_trunc($4, booked_at at time zone $3)::date as start, count(*) as n
                 from analytics.bookings
                where booked_at >= ($1::date::timestamp at time zone $3)
                  and booked_at < (($2::date + 1)::timestamp at time zone $3)
                group by 1),
           held as (
               select date_trunc($4, starts_at at time zone $3)::date as start,
                      count(*) as total,
                      count(*) filter (where outcome = 'completed') as completed,
                      count(*) filter (where outcome = 'cancelled') as cancelled,
                      count(*) filter (where outcome = 'no_show') as no_show
                 from analytics.bookings
                where starts_at >= ($1::date::timestamp at time zone $3)
                  and starts_at < (($2::date + 1)::timestamp at time zone $3)
                group by 1),
           msgs as (
               select date_trunc($4, day::timestamp)::date as start,
                      sum(inbound) as inbound, sum(outbound) as outbound
                 from analytics.messages_daily where day between $1 and $2
                group by 1)
           select p.start as "start!",
                  coalesce(made.n, 0) as "made!",
                  coalesce(held.total, 0) as "appointments!",
                  coalesce(held.completed, 0) as "completed!",
                  coalesce(held.cancelled, 0) as "cancelled!",
                  coalesce(held.no_show, 0) as "no_show!",
                  coalesce(msgs.inbound, 0)::bigint as "messages_in!",
                  coalesce(msgs.outbound, 0)::bigint as "messages_out!"
             from periods p
             left join made using (start)
             left join held using (start)
             left join msgs using (start)
            order by p.start"#,
        from,
        to,
        tz,
        unit
    )
    .fetch_all(&mut *tx)
    .await?;

    let revenue = sqlx::query!(
        r#"select date_trunc($4, starts_at at time zone $3)::date as "start!", currency,
                  coalesce(sum(price_minor) filter (where outcome <> 'cancelled'), 0)::bigint
                      as "expected!",
                  coalesce(sum(price_minor) filter (where outcome = 'completed'), 0)::bigint
                      as "realised!"
             from analytics.bookings
            where starts_at >= ($1::date::timestamp at time zone $3)
              and starts_at < (($2::date + 1)::timestamp at time zone $3)
            group by 1, 2 order by 1, 2"#,
        from,
        to,
        tz,
        unit
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut revenue_by_period: BTreeMap<NaiveDate, Vec<Revenue>> = BTreeMap::new();
    for r in revenue {
        revenue_by_period.entry(r.start).or_default().push(Revenue {
            currency: r.currency,
            expected_minor: r.expected,
            realised_minor: r.realised,
        });
    }

    let points = rows
        .into_iter()
        .map(|r| Point {
            revenue: revenue_by_period.remove(&r.start).unwrap_or_default(),
            start: r.start,
            bookings_made: r.made,
            appointments: r.appointments,
            completed: r.completed,
            cancelled: r.cancelled,
            no_show: r.no_show,
            messages_in: r.messages_in,
            messages_out: r.messages_out,
        })
        .collect();
    Ok(Json(Series {
        range,
        interval,
        points,
    }))
}

/// Appointments at one local weekday and hour.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HourCell {
    /// ISO weekday: 1 is Monday, 7 Sunday.
    pub weekday: i32,
    /// The local hour the appointment starts in, 0 to 23.
    pub hour: i32,
    pub appointments: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BusiestHours {
    pub range: Range,
    /// Only the weekday and hour pairs with appointments, busiest first.
    pub cells: Vec<HourCell>,
}

/// `GET /v1/analytics/busiest-hours?from=&to=`.
#[utoipa::path(
    get,
    path = "/v1/analytics/busiest-hours",
    tag = "analytics",
    summary = "When appointments are: weekday by hour",
    description = "Appointments not cancelled whose time falls in the range, by the local weekday and hour they start. Owners and admins (read_usage).",
    params(ConsistencyToken, RangeParams),
    responses(
        (status = 200, description = "The weekday and hour cells with appointments", body = BusiestHours),
        TenantReader, Forbidden
    ),
    security(("bearer" = []))
)]
pub async fn busiest_hours(
    State(app): State<AppState>,
    AnalyticsReader(reader): AnalyticsReader,
    Params(params): Params<RangeParams>,
) -> Result<Json<BusiestHours>, Problem> {
    let (mut tx, range) = open(&app, &reader, &params).await?;
    let cells = sqlx::query_as!(
        HourCell,
        r#"select extract(isodow from starts_at at time zone $3)::int as "weekday!",
                  extract(hour from starts_at at time zone $3)::int as "hour!",
                  count(*) as "appointments!"
             from analytics.bookings
            where starts_at >= ($1::date::timestamp at time zone $3)
              and starts_at < (($2::date + 1)::timestamp at time zone $3)
              and outcome <> 'cancelled'
            group by 1, 2 order by 3 desc, 1, 2"#,
        range.from,
        range.to,
        range.time_zone
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(Json(BusiestHours { range, cells }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlatformParams {
    /// The first UTC day (YYYY-MM-DD); 29 days before `to` by default.
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<Day>,
    /// The last UTC day, included; today by default.
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<Day>,
}

/// One business on the platform over the range.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantActivity {
    pub tenant_id: Uuid,
    pub business_name: String,
    pub bookings_made: i64,
    pub appointments_completed: i64,
    pub conversations: i64,
    pub messages_in: i64,
    pub messages_out: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlatformActivity {
    pub range: Range,
    /// How far the analytics consumer has applied the stream.
    pub applied_until: Option<DateTime<Utc>>,
    pub tenants: i64,
    pub bookings_made: i64,
    pub conversations: i64,
    pub messages_in: i64,
    pub messages_out: i64,
    /// The 20 busiest businesses by bookings made.
    pub busiest: Vec<TenantActivity>,
}

/// `GET /v1/operator/analytics?from=&to=`: the whole platform, for its operator.
#[utoipa::path(
    get,
    path = "/v1/operator/analytics",
    tag = "operator",
    summary = "Activity across every business, for the platform operator",
    params(PlatformParams),
    responses(
        (status = 200, description = "The platform's figures over the range (UTC days)", body = PlatformActivity),
        Unauthenticated, BadParameter
    ),
    security(("bearer" = []))
)]
pub async fn platform(
    State(app): State<AppState>,
    operator: Operator,
    Params(params): Params<PlatformParams>,
) -> Result<Json<PlatformActivity>, Problem> {
    let today = Utc::now().date_naive();
    let range = RangeParams {
        from: params.from,
        to: params.to,
    }
    .range("UTC".into(), today)?;
    app.security.record(platform::security::SecurityEvent {
        kind: "operator_read_analytics",
        tenant_id: None,
        actor: Some(format!("operator:{}", operator.id)),
        source: None,
        detail: serde_json::json!({}),
    });
    let pool = app.log.pool();
    let (from, to) = (range.from, range.to);
    let totals = sqlx::query!(
        r#"select (select count(*) from analytics.tenants) as "tenants!",
                  (select count(*) from analytics.bookings
                    where booked_at >= ($1::date::timestamp at time zone 'UTC')
                      and booked_at < (($2::date + 1)::timestamp at time zone 'UTC')) as "bookings!",
                  (select count(*) from analytics.sessions
                    where started_at >= ($1::date::timestamp at time zone 'UTC')
                      and started_at < (($2::date + 1)::timestamp at time zone 'UTC')) as "conversations!",
                  (select coalesce(sum(inbound), 0) from analytics.messages_daily
                    where day between $1 and $2)::bigint as "messages_in!",
                  (select coalesce(sum(outbound), 0) from analytics.messages_daily
                    where day between $1 and $2)::bigint as "messages_out!",
                  (select updated_at from analytics.checkpoints where consumer = 'analytics')
                      as applied_until"#,
        from,
        to
    )
    .fetch_one(pool)
    .await?;
    let busiest = sqlx::query_as!(
        TenantActivity,
        r#"select t.tenant_id as "tenant_id!", t.business_name as "business_name!",
                  coalesce(b.made, 0) as "bookings_made!",
                  coalesce(b.completed, 0) as "appointments_completed!",
                  coalesce(s.n, 0) as "conversations!",
                  coalesce(m.inbound, 0)::bigint as "messages_in!",
                  coalesce(m.outbound, 0)::bigint as "messages_out!"
             from analytics.tenants t
             left join (select tenant_id, count(*) as made,
                               count(*) filter (where outcome = 'completed') as completed
                          from analytics.bookings
                         where booked_at >= ($1::date::timestamp at time zone 'UTC')
                           and booked_at < (($2::date + 1)::timestamp at time zone 'UTC')
                         group by tenant_id) b using (tenant_id)
             left join (select tenant_id, count(*) as n from analytics.sessions
                         where started_at >= ($1::date::timestamp at time zone 'UTC')
                           and started_at < (($2::date + 1)::timestamp at time zone 'UTC')
                         group by tenant_id) s using (tenant_id)
             left join (select tenant_id, sum(inbound) as inbound, sum(outbound) as outbound
                          from analytics.messages_daily where day between $1 and $2
                         group by tenant_id) m using (tenant_id)
            order by coalesce(b.made, 0) desc, coalesce(m.inbound, 0) desc, t.business_name
            limit 20"#,
        from,
        to
    )
    .fetch_all(pool)
    .await?;
    Ok(Json(PlatformActivity {
        range,
        applied_until: totals.applied_until,
        tenants: totals.tenants,
        bookings_made: totals.bookings,
        conversations: totals.conversations,
        messages_in: totals.messages_in,
        messages_out: totals.messages_out,
        busiest,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_time_on_offer_is_each_person_s_hours_less_days_off_and_closures() {
        let every = |ranges: serde_json::Value| {
            json!({"monday": ranges, "tuesday": ranges, "wednesday": ranges,
                "thursday": ranges, "friday": ranges, "saturday": ranges, "sunday": ranges})
        };
        let settings: BotSettings = serde_json::from_value(json!({
            "time_zone": "Europe/Madrid",
            "hours": every(json!([{"open": "08:00", "close": "20:00"}])),
            // A bank holiday on Tuesday.
            "closures": [{"from": "2026-12-08", "to": "2026-12-08"}],
            "staff": [
                // 11 hours a day, with a lunch break; off on Wednesday.
                {"id": "ana", "name": "Ana",
                 "hours": every(json!([{"open": "08:00", "close": "14:00"},
                                       {"open": "15:00", "close": "20:00"}])),
                 "time_off": [{"from": "2026-12-09", "to": "2026-12-09"}]},
                // The business's 12 hours.
                {"id": "luis", "name": "Luis"},
            ],
        }))
        .unwrap();
        let week = Range {
            from: "2026-12-07".parse().unwrap(),
            to: "2026-12-13".parse().unwrap(),
            time_zone: "Europe/Madrid".into(),
        };
        // Ana: 7 days less Tuesday and Wednesday; Luis: 7 days less Tuesday.
        let since_ever = |s: &BotSettings| vec![(week.from, s.clone())];
        assert_eq!(
            open_minutes(&since_ever(&settings), &week),
            (5 * 11 + 6 * 12) * 60
        );

        let alone: BotSettings = serde_json::from_value(json!({
            "time_zone": "Europe/Madrid",
            "hours": every(json!([{"open": "09:00", "close": "17:00"}])),
        }))
        .unwrap();
        assert_eq!(
            open_minutes(&since_ever(&alone), &week),
            7 * 8 * 60,
            "the business alone"
        );

        // The business alone until Thursday, then the staff's hours: each day by its own.
        let changed = vec![
            ("2026-11-01".parse().unwrap(), alone.clone()),
            ("2026-12-10".parse().unwrap(), settings.clone()),
        ];
        assert_eq!(
            open_minutes(&changed, &week),
            3 * 8 * 60 + 4 * (11 + 12) * 60,
            "Monday to Wednesday at 8 hours, Thursday to Sunday with Ana and Luis"
        );
        // A day before the first configuration known takes the first.
        let later = vec![("2026-12-10".parse().unwrap(), alone)];
        assert_eq!(open_minutes(&later, &week), 7 * 8 * 60);
        assert_eq!(open_minutes(&[], &week), 0, "no hours, no time on offer");
    }
}
