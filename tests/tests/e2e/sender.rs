//! The WhatsApp sender against the local fake of the Cloud API: every reply reaches the
//! customer once, transient refusals are retried, permanent ones recorded, and nothing is
//! ever sent twice, across redelivery and an abandoned claim.

use std::time::Duration;

use e2e_tests::tenant::Tenant;
use e2e_tests::{
    CommandApp, ProjectorHandle, QueryApp, eventually, projector_settings, query_api_settings,
    spawn_command_api_with_graph, spawn_projector, spawn_query_api,
};
use fake_whatsapp::{Fake, Fault, Inbound, WebhookConfig};
use serde_json::{Value, json};

const NUMBER: &str = "106540352242922";
const APP_SECRET: &str = "app-secret-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(20);

struct World {
    fake: Fake,
    app: CommandApp,
    query: QueryApp,
    projector: Option<ProjectorHandle>,
    settings: projector::Settings,
    tenant_id: String,
    token: String,
}

async fn world(tune: impl FnOnce(&mut projector::Settings)) -> World {
    let fake = Fake::new(fake_whatsapp::DEFAULT_TOKEN);
    let fake_url = fake.clone().spawn().await;
    let app = spawn_command_api_with_graph(&fake_url).await;
    let owner = app.onboard("sender-salon").await;
    let connected = app
        .client
        .put(format!("{}/v1/whatsapp", app.address))
        .bearer_auth(&owner.access_token)
        .json(
            &json!({"phone_number_id": NUMBER, "access_token": fake_whatsapp::DEFAULT_TOKEN,
            "app_secret": APP_SECRET, "verify_token": "verify-token-0123456789"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(connected.status().as_u16(), 200);
    let (tenant_id, token) = (owner.tenant_id.clone(), owner.access_token.clone());
    Tenant { owner, app: &app }.configured().await;
    fake.configure(WebhookConfig {
        webhook_url: Some(format!("{}/webhooks/whatsapp", app.address)),
        app_secret: Some(APP_SECRET.into()),
        status_webhooks: true,
        redeliver_for_ms: None,
    });
    let mut settings = projector_settings(&app.db, &app.nats);
    settings.sender.api_base_url = fake_url;
    tune(&mut settings);
    let projector = Some(spawn_projector(settings.clone()).await);
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    World {
        fake,
        app,
        query,
        projector,
        settings,
        tenant_id,
        token,
    }
}

impl World {
    async fn say(&self, from: &str, text: &str) -> String {
        let (wamid, status) = self
            .fake
            .deliver_inbound(&Inbound {
                phone_number_id: NUMBER.into(),
                from: from.into(),
                name: Some("Ana".into()),
                text: Some(text.into()),
                button_reply: None,
                list_reply: None,
                template_reply: None,
            })
            .await
            .unwrap();
        assert_eq!(status, 200);
        wamid
    }

    /// The conversation as the query API shows it, once `done` holds.
    async fn conversation(&self, phone: &str, done: impl Fn(&Value) -> bool) -> Value {
        let path = format!("/v1/conversations/%2B{}", phone.trim_start_matches('+'));
        eventually(WAIT, || async {
            let (status, body) = self.query.get(&path, &self.token, None).await;
            (status == 200 && done(&body)).then_some(body)
        })
        .await
        .unwrap_or_else(|| panic!("the conversation with {phone} never got there"))
    }

    /// Once every reply to `phone` has an outcome: checks none failed and each reached the
    /// customer once, and returns how many there are.
    async fn all_delivered(&self, phone: &str) -> u64 {
        let conversation = self
            .conversation(phone, |c| {
                let out = outbound(c);
                !out.is_empty() && out.iter().all(|m| m["status"] != "pending")
            })
            .await;
        let replies = outbound(&conversation);
        assert!(
            replies.iter().all(|m| m["status"] != "failed"),
            "{conversation}"
        );
        assert_eq!(self.fake.messages_to(phone).len(), replies.len());
        replies.len() as u64
    }

    async fn events(&self, event_type: &str) -> Vec<Value> {
        e2e_tests::wa::events(&self.app, event_type).await
    }
}

fn outbound(conversation: &Value) -> Vec<Value> {
    conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "out")
        .cloned()
        .collect()
}

#[tokio::test]
async fn replies_reach_the_customer_once_and_statuses_move_forward() {
    let w = world(|_| {}).await;
    let me = "34600000001";
    w.say(me, "hi").await;
    let conversation = w
        .conversation(me, |c| {
            let out = outbound(c);
            !out.is_empty() && out.iter().all(|m| m["status"] == "read")
        })
        .await;
    let sent = w.fake.messages_to(me);
    assert_eq!(sent.len(), outbound(&conversation).len());
    assert_eq!(sent[0].to, me);
    assert_eq!(sent[0].phone_number_id, NUMBER);
    assert_eq!(outbound(&conversation)[0]["wamid"], sent[0].wamid.as_str());
    assert!(
        conversation["bot_state"]["step"].is_string(),
        "{conversation}"
    );
    assert_eq!(conversation["profile_name"], "Ana");

    // The inbox lists it.
    let (_, inbox) = w.query.get("/v1/conversations", &w.token, None).await;
    assert_eq!(inbox["items"][0]["customer_phone"], format!("+{me}"));

    // Meta's late, repeated "sent" does not move a read message back.
    let wamid = sent[0].wamid.clone();
    let late = fake_whatsapp::status_payload(NUMBER, me, &wamid, "sent");
    let body = serde_json::to_vec(&late).unwrap();
    let response = w
        .app
        .client
        .post(format!("{}/webhooks/whatsapp", w.app.address))
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            whatsapp::signature::sign(APP_SECRET.as_bytes(), &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = w.conversation(me, |_| true).await;
    assert!(
        outbound(&again).iter().all(|m| m["status"] == "read"),
        "{again}"
    );
    assert_eq!(
        w.fake.messages_to(me).len(),
        sent.len(),
        "nothing sent twice"
    );

    // The usage counters saw one message in and each reply out.
    let (_, usage) = w.query.get("/v1/usage", &w.token, None).await;
    assert_eq!(usage["messages_in"], 1);
    assert_eq!(usage["messages_out"], sent.len() as i64);
}

#[tokio::test]
async fn transient_refusals_are_retried_and_permanent_ones_recorded() {
    let w = world(|s| s.sender.timeout_ms = 300).await;
    let patient = "34600000002";
    for fault in [
        Fault {
            code: Some(130429),
            ..Default::default()
        },
        Fault {
            code: Some(131056),
            status: Some(429),
            ..Default::default()
        },
        Fault {
            code: Some(1),
            status: Some(500),
            ..Default::default()
        },
        Fault {
            // Far past the 300 ms timeout: the fake never records it, however loaded the machine.
            latency_ms: Some(3000),
            ..Default::default()
        },
    ] {
        w.fake.push_fault(Fault {
            to: Some(patient.into()),
            ..fault
        });
    }
    w.say(patient, "hi").await;
    let delivered = w.all_delivered(patient).await;
    // Four refusals, then one success per reply (the timed-out attempt was not recorded).
    assert_eq!(w.fake.attempts_to(patient), 4 + delivered);

    // Outside the 24-hour window: recorded with Meta's code and reason, not retried.
    let late = "34600000003";
    w.fake.push_fault(Fault {
        code: Some(131047),
        to: Some(late.into()),
        ..Default::default()
    });
    w.say(late, "hi").await;
    let conversation = w
        .conversation(late, |c| {
            outbound(c).first().is_some_and(|m| m["status"] == "failed")
        })
        .await;
    let failed = &outbound(&conversation)[0];
    assert_eq!(failed["error_code"], 131047);
    assert!(
        failed["error_reason"]
            .as_str()
            .unwrap()
            .contains("24 hours"),
        "{failed}"
    );
    let failures = w.events("OutboundMessageFailed").await;
    assert_eq!(failures.len(), 1, "{failures:?}");

    // A refused token marks the tenant's credentials invalid.
    let locked_out = "34600000004";
    w.fake.push_fault(Fault {
        code: Some(190),
        to: Some(locked_out.into()),
        ..Default::default()
    });
    w.say(locked_out, "hi").await;
    eventually(WAIT, || async {
        let (_, tenant) = w.query.get("/v1/tenant", &w.token, None).await;
        (tenant["whatsapp_credentials_valid"] == false).then_some(())
    })
    .await
    .expect("the credentials are marked invalid");
    assert_eq!(
        w.events("WhatsAppCredentialsInvalidated").await[0]["meta_error_code"],
        190
    );
    let _ = &w.tenant_id;
}

#[tokio::test]
async fn a_reply_held_by_an_open_breaker_goes_once_it_closes() {
    // The breaker opens after 5 failures in a row, for a second; the claim lapses after a
    // minute, far longer than the test waits.
    let w = world(|s| {
        s.sender.breaker_failures = 5;
        s.sender.breaker_open_ms = 1000;
        s.sender.stale_claim_ms = 60_000;
    })
    .await;
    let me = "34600000006";
    for _ in 0..5 {
        w.fake.push_fault(Fault {
            code: Some(1),
            status: Some(500),
            to: Some(me.into()),
            ..Default::default()
        });
    }
    w.say(me, "hi").await;
    // Held, given back and sent once the breaker closed: not failed as a claim left behind.
    let delivered = w.all_delivered(me).await;
    assert_eq!(w.fake.attempts_to(me), 5 + delivered);
    let stats = w.projector.as_ref().unwrap().sender.clone().unwrap();
    assert_eq!(
        stats
            .unknown_outcome
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn a_reply_is_never_sent_twice_across_redelivery_and_an_abandoned_claim() {
    let mut w = world(|s| s.sender.stale_claim_ms = 500).await;
    let me = "34600000005";
    w.say(me, "hi").await;
    let conversation = w
        .conversation(me, |c| {
            let out = outbound(c);
            !out.is_empty() && out.iter().all(|m| m["status"] != "pending")
        })
        .await;
    let replies = outbound(&conversation).len();
    let sent_before = w.fake.messages_to(me).len();
    assert_eq!(sent_before, replies);

    // Stop the projector; republish every BotReplied under new message ids (a redelivery),
    // and leave one reply's claim as if a sender had died mid-call.
    w.projector.take().unwrap().shutdown().await;
    let pool = w.app.db.app_pool().await;
    let store = eventstore::EventStore::new(pool.clone());
    let tenant: uuid::Uuid = w.tenant_id.parse().unwrap();
    let customer = domain::values::PhoneNumber::parse(&format!("+{me}")).unwrap();
    let stream = app::conversation::known_conversation(&store, tenant, &customer)
        .await
        .unwrap()
        .expect("the customer's conversation");
    let replied: Vec<_> = store
        .read_stream(tenant, &stream, 1)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "BotReplied")
        .collect();
    assert_eq!(replied.len(), replies);
    let abandoned = replied[0].payload["reply_id"].as_str().unwrap().to_owned();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("select set_config('app.tenant_id', $1, true)")
        .bind(&w.tenant_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("update wa_outbound set state = 'sending', wamid = null, updated_at = now() - interval '1 hour' where reply_id = $1")
        .bind(&abandoned)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let js = w.app.nats.jetstream();
    for event in &replied {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", uuid::Uuid::new_v4().to_string().as_str());
        js.publish_with_headers(
            w.app
                .nats
                .ns
                .event_subject(tenant, "conversation", "BotReplied"),
            headers,
            serde_json::to_vec(event).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let projector = spawn_projector(w.settings.clone()).await;
    let stats = projector.sender.clone().unwrap();
    eventually(WAIT, || async {
        let seen = stats
            .already_handled
            .load(std::sync::atomic::Ordering::Relaxed)
            + stats
                .unknown_outcome
                .load(std::sync::atomic::Ordering::Relaxed);
        (seen >= replies as u64).then_some(())
    })
    .await
    .expect("every redelivered reply was looked at");
    assert_eq!(
        w.fake.messages_to(me).len(),
        sent_before,
        "nothing was sent again"
    );
    assert_eq!(
        stats
            .unknown_outcome
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(stats.sent.load(std::sync::atomic::Ordering::Relaxed), 0);
    projector.shutdown().await;
}

/// One claim's answer: tenant, reply, outcome, wamid, Meta's code and reason.
type Claimed = (
    uuid::Uuid,
    String,
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
);

/// The replies of many tenants are claimed in one statement (`wa_claim_batch`) and settled in
/// one (`wa_settle_batch`): each reply answered once, as it stands, the same reply id of two
/// tenants being two replies; a claim a dead sender left lapses; and the sender's role reaches
/// the rows of the tenants a statement names, no other.
#[tokio::test]
async fn replies_of_many_tenants_are_claimed_and_settled_one_statement_for_all() {
    let db = testkit::TestDb::new().await;
    let app = db.app_pool().await;
    let superuser = db.superuser_url_pool().await;
    let (a, b) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
    let claim = |asked: Vec<(uuid::Uuid, &str)>| {
        let app = app.clone();
        let (tenants, replies): (Vec<uuid::Uuid>, Vec<String>) =
            asked.into_iter().map(|(t, r)| (t, r.to_owned())).unzip();
        async move {
            sqlx::query_as::<_, Claimed>(
                "select * from wa_claim_batch($1, $2, 60, 'lapsed: unknown') order by 1, 2",
            )
            .bind(tenants)
            .bind(replies)
            .fetch_all(&app)
            .await
            .unwrap()
        }
    };
    let row = |t, r: &str, outcome: &str, wamid: Option<&str>, code, reason: Option<&str>| {
        (
            t,
            r.to_owned(),
            outcome.to_owned(),
            wamid.map(str::to_owned),
            code,
            reason.map(str::to_owned),
        )
    };

    let first = claim(vec![(a, "r1"), (b, "r1"), (a, "r1"), (a, "r2")]).await;
    assert_eq!(
        first,
        vec![
            row(a, "r1", "fresh", None, None, None),
            row(a, "r2", "fresh", None, None, None),
            row(b, "r1", "fresh", None, None, None),
        ],
        "each reply once, the same id of two tenants twice"
    );
    assert_eq!(
        claim(vec![(a, "r1"), (b, "r1"), (a, "r3")]).await,
        vec![
            row(a, "r1", "busy", None, None, None),
            row(a, "r3", "fresh", None, None, None),
            row(b, "r1", "busy", None, None, None),
        ],
        "held ones are busy, new ones fresh, in one statement"
    );

    let settled: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("select * from wa_settle_batch($1, $2, $3, $4, $5, $6) order by 1, 2")
            .bind(vec![a, b, a])
            .bind(vec!["r1", "r1", "never-claimed"])
            .bind(vec!["sent", "failed", "sent"])
            .bind(vec![Some("wamid.a1"), None, Some("wamid.x")])
            .bind(vec![None, Some(131047_i64), None])
            .bind(vec![None, Some("outside the window"), None])
            .fetch_all(&app)
            .await
            .unwrap();
    assert_eq!(
        settled,
        vec![(a, "r1".to_owned()), (b, "r1".to_owned())],
        "a reply with no claim is not settled"
    );
    // A sender took r2 an hour ago and died mid-call.
    sqlx::query("update wa_outbound set updated_at = now() - interval '1 hour' where tenant_id = $1 and reply_id = 'r2'")
        .bind(a)
        .execute(&superuser)
        .await
        .unwrap();
    assert_eq!(
        claim(vec![(b, "r1"), (a, "r2"), (a, "r1"), (a, "r3")]).await,
        vec![
            row(a, "r1", "sent", Some("wamid.a1"), None, None),
            row(a, "r2", "lapsed", None, Some(0), Some("lapsed: unknown")),
            row(a, "r3", "busy", None, None, None),
            row(
                b,
                "r1",
                "failed",
                None,
                Some(131047),
                Some("outside the window")
            ),
        ],
        "settled ones answer their outcome; an abandoned one lapses"
    );
    assert_eq!(
        claim(vec![(a, "r2")]).await,
        vec![row(
            a,
            "r2",
            "failed",
            None,
            Some(0),
            Some("lapsed: unknown")
        )],
        "a lapsed claim stays failed"
    );

    // The sender's role, with one tenant listed, reaches that tenant's rows alone; and the
    // functions leave neither the role nor the list behind them.
    let mut tx = app.begin().await.unwrap();
    sqlx::query("select * from wa_claim_batch($1, $2, 60, 'x')")
        .bind(vec![a])
        .bind(vec!["r4"])
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    let (role, listed): (String, Option<String>) = sqlx::query_as(
        "select current_user::text, nullif(current_setting('app.tenant_ids', true), '')",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!((role.as_str(), listed), ("booking_app", None));
    sqlx::query(
        "select set_config('app.tenant_ids', $1, true), set_config('role', 'booking_sender', true)",
    )
    .bind(format!(r#"{{"{a}": true}}"#))
    .execute(&mut *tx)
    .await
    .unwrap();
    let seen: Vec<uuid::Uuid> = sqlx::query_scalar("select distinct tenant_id from wa_outbound")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, vec![a], "the listed tenant's rows alone");
    let err = sqlx::query(
        "insert into wa_outbound (tenant_id, reply_id, state) values ($1, 'r9', 'sending')",
    )
    .bind(b)
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
}
