//! Traces: with an OTLP endpoint configured, one WhatsApp message is one trace across the
//! processes, carried by the HTTP request, the events' metadata, the NATS headers and the
//! Cloud API call; a read that waits for a write's consistency token shows the wait.

use std::collections::HashMap;
use std::time::Duration;

use e2e_tests::eventually;
use e2e_tests::otlp::{Collector, Span};
use e2e_tests::stack::{Customer, Platform, Routes};
use serde_json::{Value, json};
use testkit::TestNats;

/// The trace id and span id of a `traceparent`.
fn ids(traceparent: &str) -> (String, String) {
    let (trace, span) = tracecontext::parse(traceparent)
        .unwrap_or_else(|| panic!("not a traceparent: {traceparent}"));
    (trace.to_owned(), span.to_owned())
}

/// `span` and its ancestors, up to the first one not received.
fn lineage<'a>(spans: &'a HashMap<String, Span>, span: &str) -> Vec<&'a Span> {
    let mut chain = Vec::new();
    let mut next = spans.get(span);
    while let Some(s) = next {
        chain.push(s);
        next = spans.get(&s.parent_span_id);
    }
    chain
}

#[tokio::test]
async fn one_whatsapp_message_is_one_trace_from_the_webhook_to_the_reply() {
    let collector = Collector::spawn().await;
    let nats = TestNats::new().await;
    let routes = Routes {
        traces: Some(collector.endpoint.clone()),
        ..Routes::default()
    };
    let p = Platform::start_with(&nats.url, nats.ns.prefix(), "memory", routes).await;
    let salon = p.business("traced-salon", "100000000000951").await;
    let mut ana = Customer::new(&p, &salon, "+34600000951");

    // The replies reach Meta (the fake) with the context of the span that sent them, all in
    // the trace of the message they answer.
    let replies = ana.say("hi").await;
    assert!(!replies.is_empty());
    let sent: Vec<(String, String)> = replies
        .iter()
        .map(|r| {
            ids(r["traceparent"]
                .as_str()
                .expect("a reply carries a traceparent"))
        })
        .collect();
    let trace_id = sent[0].0.clone();
    assert!(sent.iter().all(|(t, _)| *t == trace_id), "{sent:?}");

    // The spans of that trace, from three hops in two processes, form one tree: the Cloud
    // API call, under the sender's handling of the reply event, under the relay's publishing
    // of it, under the append of it, under the command API's answer to Meta's webhook, the
    // root.
    let (spans, chain) = eventually(Duration::from_secs(30), || async {
        let spans: HashMap<String, Span> = collector
            .trace(&trace_id)
            .into_iter()
            .map(|s| (s.span_id.clone(), s))
            .collect();
        let chain: Vec<(String, String)> = lineage(&spans, &sent[0].1)
            .iter()
            .map(|s| (s.service.clone(), s.name.clone()))
            .collect();
        let rooted = chain
            .last()
            .is_some_and(|(_, name)| name.as_str() == "POST /webhooks/whatsapp");
        rooted.then_some((spans, chain))
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no complete trace {trace_id}; received {:#?}",
            collector.spans()
        )
    });
    let hops: Vec<(&str, &str)> = chain
        .iter()
        .map(|(service, name)| (service.as_str(), name.as_str()))
        .filter(|(_, name)| {
            [
                "send_message",
                "consume sender",
                "publish",
                "append",
                "POST /webhooks/whatsapp",
            ]
            .contains(name)
        })
        .collect();
    assert_eq!(
        hops,
        [
            ("projector", "send_message"),
            ("projector", "consume sender"),
            ("projector", "publish"),
            ("command-api", "append"),
            ("command-api", "POST /webhooks/whatsapp"),
        ],
        "{chain:#?}"
    );
    let root = spans
        .values()
        .find(|s| s.parent_span_id.is_empty())
        .unwrap();
    assert_eq!(root.name, "POST /webhooks/whatsapp");
    assert_eq!(
        spans
            .values()
            .filter(|s| s.parent_span_id.is_empty())
            .count(),
        1,
        "one root: {spans:#?}"
    );
    // The projections applied the message's events in the same trace.
    eventually(Duration::from_secs(30), || async {
        collector
            .trace(&trace_id)
            .iter()
            .any(|s| s.name == "consume projections")
            .then_some(())
    })
    .await
    .expect("the projections' span joins the trace");

    // The log keeps the context: the message received, the replies decided and the sends
    // recorded, each in the trace.
    let log = p.db.operator_pool().await;
    let recorded: Vec<(String, Value)> = sqlx::query_as(
        "select event_type, metadata from events
          where tenant_id = $1::text::uuid and stream_type = 'conversation'
          order by global_position",
    )
    .bind(&salon.tenant_id)
    .fetch_all(&log)
    .await
    .unwrap();
    for kind in ["MessageReceived", "BotReplied", "OutboundMessageSent"] {
        let traced: Vec<String> = recorded
            .iter()
            .filter(|(t, _)| t == kind)
            .map(|(_, m)| {
                ids(m["traceparent"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{kind}: {m}")))
                .0
            })
            .collect();
        assert!(!traced.is_empty(), "no {kind} in {recorded:?}");
        assert!(traced.iter().all(|t| *t == trace_id), "{kind}: {traced:?}");
    }

    // A caller's own trace goes on through a write and a read that waits for it: the read's
    // consistency wait is a span of its own, under the query API's request span.
    let caller_trace = "0af7651916cd43dd8448eb211c80319c";
    let caller = format!("00-{caller_trace}-b7ad6b7169203331-01");
    let booked: Value = p
        .client
        .post(format!("{}/v1/bookings", p.command))
        .bearer_auth(&salon.token)
        .header("traceparent", &caller)
        .json(
            &json!({"service_id": salon.service_id, "start": e2e_tests::tenant::slot(16),
            "customer": {"phone": "+34600000952"}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = booked["consistency_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{booked}"));
    let read = p
        .client
        .get(format!("{}/v1/bookings", p.query))
        .bearer_auth(&salon.token)
        .header("traceparent", &caller)
        .header("x-consistency-token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status().as_u16(), 200);
    let (wait, request) = eventually(Duration::from_secs(30), || async {
        let spans = collector.trace(caller_trace);
        let wait = spans.iter().find(|s| s.name == "consistency_wait")?.clone();
        let request = spans
            .iter()
            .find(|s| s.span_id == wait.parent_span_id)?
            .clone();
        Some((wait, request))
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no consistency wait in {:#?}",
            collector.trace(caller_trace)
        )
    });
    assert_eq!(wait.service, "query-api");
    assert_eq!(request.name, "GET /v1/bookings");

    // The dashboard's calls to the APIs join its request's trace: signing in, the command
    // API's answer to its login call is a child of the dashboard's own request span.
    let port = e2e_tests::free_port();
    let mut dashboard = tokio::process::Command::new(e2e_tests::binary("dashboard"))
        .env("APP__HTTP__PORT", port.to_string())
        .env("APP__APIS__COMMAND_URL", &p.command)
        .env("APP__APIS__QUERY_URL", &p.query)
        .env(
            "APP__REDIS__KEY_PREFIX",
            format!("traces:{}:", uuid::Uuid::new_v4().simple()),
        )
        .env("APP__SESSION__SECURE_COOKIE", "false")
        .env("APP__LOG__FILTER", "error")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint)
        .env("OTEL_SERVICE_NAME", "dashboard")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the dashboard starts");
    let base = format!("http://127.0.0.1:{port}");
    let ready =
        e2e_tests::wait_for_status(&format!("{base}/readyz"), 200, Duration::from_secs(30)).await;
    assert_eq!(ready, Some(200));
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = browser
        .post(format!("{base}/login"))
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("slug", "traced-salon"),
            ("email", "owner@traced-salon.example"),
            ("password", "correct horse battery staple"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status().as_u16(), 303);
    let (login, page) = eventually(Duration::from_secs(30), || async {
        let spans = collector.spans();
        let login = spans
            .iter()
            .find(|s| s.service == "command-api" && s.name == "POST /v1/auth/login")?
            .clone();
        let page = spans
            .iter()
            .find(|s| s.span_id == login.parent_span_id)?
            .clone();
        Some((login, page))
    })
    .await
    .expect("the command API's login span under the dashboard's");
    assert_eq!(
        (page.service.as_str(), page.name.as_str()),
        ("dashboard", "POST /login")
    );
    assert_eq!(page.trace_id, login.trace_id);
    dashboard.start_kill().unwrap();
}
