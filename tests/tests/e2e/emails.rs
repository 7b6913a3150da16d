//! The notifier's emails through a real SMTP server (the project's sink): invitations with a
//! token that works, the dunning emails of day 0, 3 and 6, the suspension and the
//! reinstatement, each sent once to the right tenant's owners and admins only, also across a
//! restart of the notifier.

use std::time::Duration;

use app::CommandContext;
use chrono::Utc;
use domain::billing::{InvoiceFacts, StripeStatus, SubscriptionSnapshot};
use domain::plan::{Cycle, Plan};
use domain::values::Money;
use e2e_tests::tenant::Tenant;
use e2e_tests::{
    billing_clock, eventually, projector_settings, spawn_command_api, spawn_projector, use_cases,
};
use serde_json::json;
use smtp_sink::Sink;

fn invoice(now: chrono::DateTime<Utc>) -> InvoiceFacts {
    InvoiceFacts {
        invoice_id: "in_mail".into(),
        number: Some("MAIL-1".into()),
        period_start: now,
        period_end: now + chrono::Duration::days(30),
        amount_due: Money::parse(2900, "EUR").unwrap(),
        amount_paid: Money::parse(0, "EUR").unwrap(),
        hosted_url: None,
    }
}

#[tokio::test]
async fn dunning_emails_go_once_to_the_owners_and_admins_of_the_business_only() {
    let sink = Sink::new();
    let smtp_port = sink.clone().spawn().await;
    let app = spawn_command_api().await;
    let mut settings = projector_settings(&app.db, &app.nats);
    settings.notifier.smtp_url = format!("smtp://127.0.0.1:{smtp_port}").into();
    settings.notifier.enabled = true;
    let projector = spawn_projector(settings.clone()).await;
    let t = Tenant {
        owner: app.onboard("mail-salon").await,
        app: &app,
    };
    let other = app.onboard("other-salon").await;
    for (email, role) in [
        ("admin@mail-salon.example", "admin"),
        ("staff@mail-salon.example", "staff"),
    ] {
        let (status, _, body) = t
            .send(
                reqwest::Method::POST,
                "/v1/users",
                &[],
                Some(json!({"email": email, "role": role})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let superuser = app.db.superuser_url_pool().await;
    eventually(Duration::from_secs(10), || async {
        let n: i64 = sqlx::query_scalar("select count(*) from rm_users")
            .fetch_one(&superuser)
            .await
            .unwrap();
        (n == 4).then_some(())
    })
    .await
    .expect("the team is projected");

    let tenant: uuid::Uuid = t.owner.tenant_id.parse().unwrap();
    let uc = use_cases(&app.db);
    let now = Utc::now();
    app::billing::record_customer(
        &uc,
        &CommandContext::new(tenant, "system:test", "c"),
        "cus_mail".into(),
    )
    .await
    .unwrap();
    let snapshot = SubscriptionSnapshot {
        subscription_id: "sub_mail".into(),
        status: StripeStatus::Active,
        plan: Plan::Starter,
        cycle: Cycle::Monthly,
        period_start: now,
        period_end: now + chrono::Duration::days(30),
        cancel_at_period_end: false,
    };
    app::billing::sync_subscription(&uc, tenant, "evt_s", snapshot, now)
        .await
        .unwrap();
    app::billing::record_payment_failed(&uc, tenant, "evt_f", invoice(now), now)
        .await
        .unwrap();
    let clock = billing_clock(&app.db);
    for days in [3, 6, 8] {
        eventually(Duration::from_secs(10), || async {
            (clock
                .run_once(now + chrono::Duration::days(days))
                .await
                .unwrap()
                .expired
                == 1)
                .then_some(())
        })
        .await
        .expect("the clock moves the grace period on");
    }
    let mut paid = invoice(now);
    paid.amount_paid = paid.amount_due;
    app::billing::record_invoice_paid(&uc, tenant, "evt_p", paid)
        .await
        .unwrap();

    let owner = "owner@mail-salon.example";
    let expected = [
        "Demo Salon: a payment failed",
        "Demo Salon: reminder, a payment is still due",
        "Demo Salon: reminder, a payment is still due",
        "Demo Salon is suspended for non-payment",
        "Demo Salon is back",
    ];
    let mails = eventually(Duration::from_secs(15), || async {
        let mails = e2e_tests::mails_to(&sink, owner);
        (mails.len() >= expected.len()).then_some(mails)
    })
    .await
    .expect("the owner's emails");
    let subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(subjects, expected);
    assert!(mails[1].body.contains("day 3 of 7"), "{}", mails[1].body);
    assert!(mails[2].body.contains("day 6 of 7"), "{}", mails[2].body);
    assert!(
        mails[0].body.contains(e2e_tests::TEST_UPGRADE_URL),
        "{}",
        mails[0].body
    );
    // The invitations went to the invitees; the billing emails to owners and admins only.
    let admin = e2e_tests::mails_to(&sink, "admin@mail-salon.example");
    assert_eq!(admin.len(), 1 + expected.len());
    assert_eq!(
        admin[0].subject,
        "Demo Salon invites you to its booking dashboard"
    );
    let staff = e2e_tests::mails_to(&sink, "staff@mail-salon.example");
    assert_eq!(staff.len(), 1, "staff get their invitation only");
    let token = staff[0]
        .body
        .split("token=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a link with the token");
    let accepted = app
        .post(
            "/v1/auth/accept-invitation",
            &json!({"invitation_token": token, "password": "a long enough password"}),
        )
        .await;
    assert_eq!(accepted.status().as_u16(), 200, "the emailed token works");
    let kept: i64 = sqlx::query_scalar("select count(*) from invitation_outbox")
        .fetch_one(&superuser)
        .await
        .unwrap();
    assert_eq!(kept, 0, "no token is kept once emailed");
    assert!(
        e2e_tests::mails_to(&sink, &format!("owner@{}.example", "other-salon")).is_empty(),
        "another business's owner gets none ({})",
        other.tenant_id
    );

    // Restarted, the notifier sees the events again and sends nothing twice.
    projector.shutdown().await;
    let again = spawn_projector(settings).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(e2e_tests::mails_to(&sink, owner).len(), expected.len());
    let outcomes: i64 = sqlx::query_scalar(
        "select count(*) from events where event_type = 'EmailSent'
                and payload->>'template' <> 'email_verification'",
    )
    .fetch_one(&superuser)
    .await
    .unwrap();
    assert_eq!(
        outcomes,
        2 * expected.len() as i64 + 2,
        "one outcome per email"
    );
    drop(again);
}

#[tokio::test]
async fn a_forgotten_password_is_reset_by_an_emailed_link_once() {
    let sink = Sink::new();
    let smtp_port = sink.clone().spawn().await;
    let app = spawn_command_api().await;
    let mut settings = projector_settings(&app.db, &app.nats);
    settings.notifier.smtp_url = format!("smtp://127.0.0.1:{smtp_port}").into();
    settings.notifier.enabled = true;
    let _projector = spawn_projector(settings).await;
    let owner = app.onboard("forgetful-salon").await;
    let email = "owner@forgetful-salon.example";
    for who in [email, "nobody@forgetful-salon.example"] {
        let asked = app
            .post(
                "/v1/auth/password-reset",
                &json!({"slug": "forgetful-salon", "email": who}),
            )
            .await;
        assert_eq!(asked.status().as_u16(), 202, "the same answer for {who}");
    }
    let mail = eventually(Duration::from_secs(15), || async {
        e2e_tests::mails_to(&sink, email).into_iter().next()
    })
    .await
    .expect("the reset email");
    assert_eq!(mail.subject, "Demo Salon: reset your password");
    let token = mail
        .body
        .split("token=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a link with the token")
        .to_owned();
    let short = app
        .post(
            "/v1/auth/password-reset/confirm",
            &json!({"token": token, "password": "short"}),
        )
        .await;
    assert_eq!(short.status().as_u16(), 422);
    let confirmed = app
        .post(
            "/v1/auth/password-reset/confirm",
            &json!({"token": token, "password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(confirmed.status().as_u16(), 204);
    // Every session ended; the new password signs in; the link is spent.
    let refreshed = app
        .post(
            "/v1/auth/refresh",
            &json!({"refresh_token": owner.refresh_token}),
        )
        .await;
    assert_eq!(refreshed.status().as_u16(), 401);
    let login = app
        .post(
            "/v1/auth/login",
            &json!({"slug": "forgetful-salon", "email": email, "password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(login.status().as_u16(), 200);
    let again = app
        .post(
            "/v1/auth/password-reset/confirm",
            &json!({"token": token, "password": "yet another passphrase"}),
        )
        .await;
    assert_eq!(again.status().as_u16(), 422);
    let problem: serde_json::Value = again.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "token");
    assert!(e2e_tests::mails_to(&sink, "nobody@forgetful-salon.example").is_empty());
    // The token is in no event.
    let log: Vec<String> = sqlx::query_scalar("select payload::text from events")
        .fetch_all(&app.db.operator_pool().await)
        .await
        .unwrap();
    assert!(log.iter().all(|p| !p.contains(&token)));
    assert!(log.iter().any(|p| p.contains("expires_at")));
}
