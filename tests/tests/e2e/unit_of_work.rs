//! The application layer's unit of work and its one executor, against the real event store:
//! a decision that lost a race is decided again on the new state, a bounded number of times;
//! a key's second run appends nothing; the vault's writes commit with the events or not at
//! all.

use std::sync::atomic::{AtomicUsize, Ordering};

use app::events::stream;
use app::{ATTEMPTS, App, AppError, CommandContext, execute};
use domain::Decider as _;
use domain::access::{Role, User, UserCommand, UserEvent};
use domain::ids::UserId;
use domain::values::Email;
use e2e_tests::TEST_ENCRYPTION_KEY;
use eventstore::EventStore;
use testkit::TestDb;
use uuid::Uuid;

async fn app() -> (TestDb, App) {
    let db = TestDb::new().await;
    let app = App {
        store: EventStore::new(db.app_pool().await).with_upcasters(app::events::upcasters()),
        states: app::StateCache::default(),
        sealer: vault::Sealer::from_base64(TEST_ENCRYPTION_KEY).unwrap(),
        policy: app::Policy::default(),
    };
    (db, app)
}

/// Invites a staff member under `key`.
async fn invite(app: &App, tenant: Uuid, user: Uuid, key: &str) -> app::Committed<()> {
    try_invite(app, tenant, user, key)
        .await
        .expect("the invitation is committed")
}

/// Invites a staff member under `key`, deciding on the state read.
async fn try_invite(
    app: &App,
    tenant: Uuid,
    user: Uuid,
    key: &str,
) -> Result<app::Committed<()>, AppError> {
    let ctx = CommandContext::new(tenant, "test", key);
    execute(app, &ctx, |uow| {
        Box::pin(async move {
            let user_stream = stream::<UserEvent>(user);
            let state = uow.load::<User>(&user_stream).await?;
            let events = User::decide(
                &state,
                UserCommand::Invite {
                    user_id: UserId::from_uuid(user),
                    email: Email::parse("staff@uow.example").unwrap(),
                    role: Role::Staff,
                    invited_by: None,
                },
            )
            .map_err(app::Rejection::Member)?;
            uow.stage(&user_stream, &events);
            Ok(())
        })
    })
    .await
}

/// Changes a member's role, deciding on the state read.
async fn change_role(app: &App, tenant: Uuid, user: Uuid, role: Role) {
    let ctx = CommandContext::fresh(tenant, "another writer");
    execute(app, &ctx, |uow| {
        Box::pin(async move {
            let user_stream = stream::<UserEvent>(user);
            let state = uow.load::<User>(&user_stream).await?;
            let events = User::decide(&state, UserCommand::ChangeRole { role })
                .map_err(app::Rejection::Member)?;
            uow.stage(&user_stream, &events);
            Ok(())
        })
    })
    .await
    .expect("the other writer commits");
}

async fn history(app: &App, tenant: Uuid, user: Uuid) -> Vec<UserEvent> {
    app.store
        .read_stream(tenant, &stream::<UserEvent>(user), 1)
        .await
        .unwrap()
        .iter()
        .map(|e| app::events::decode::<UserEvent>(e).unwrap())
        .collect()
}

#[tokio::test]
async fn a_decision_that_lost_a_race_is_decided_again_on_the_new_state() {
    let (_db, app) = app().await;
    let (tenant, user) = (Uuid::new_v4(), Uuid::new_v4());
    invite(&app, tenant, user, "invite").await;
    let attempts = AtomicUsize::new(0);
    let ctx = CommandContext::fresh(tenant, "test");
    let attempts_ref = &attempts;
    let app_ref = &app;
    execute(&app, &ctx, |uow| {
        Box::pin(async move {
            let user_stream = stream::<UserEvent>(user);
            let state = uow.load::<User>(&user_stream).await?;
            if attempts_ref.fetch_add(1, Ordering::SeqCst) == 0 {
                // Someone else changes the member between our read and our commit.
                change_role(app_ref, tenant, user, Role::Admin).await;
            }
            let events = User::decide(&state, UserCommand::ChangeRole { role: Role::Viewer })
                .map_err(app::Rejection::Member)?;
            uow.stage(&user_stream, &events);
            Ok(())
        })
    })
    .await
    .unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    let events = history(&app, tenant, user).await;
    assert_eq!(
        events[1..],
        [
            UserEvent::UserRoleChanged {
                from: Role::Staff,
                to: Role::Admin
            },
            // Decided again on the admin the other writer made, not on the staff first read.
            UserEvent::UserRoleChanged {
                from: Role::Admin,
                to: Role::Viewer
            }
        ]
    );
}

#[tokio::test]
async fn a_stream_that_keeps_moving_ends_in_busy_after_the_bounded_attempts() {
    let (_db, app) = app().await;
    let (tenant, user) = (Uuid::new_v4(), Uuid::new_v4());
    invite(&app, tenant, user, "invite").await;
    let attempts = AtomicUsize::new(0);
    let ctx = CommandContext::fresh(tenant, "test");
    let (attempts_ref, app_ref) = (&attempts, &app);
    let outcome = execute(&app, &ctx, |uow| {
        Box::pin(async move {
            let user_stream = stream::<UserEvent>(user);
            let state = uow.load::<User>(&user_stream).await?;
            let n = attempts_ref.fetch_add(1, Ordering::SeqCst);
            let role = if n % 2 == 0 { Role::Admin } else { Role::Staff };
            change_role(app_ref, tenant, user, role).await;
            uow.stage(&user_stream, &[UserEvent::UserDeactivated]);
            Ok(state)
        })
    })
    .await;
    assert!(matches!(outcome, Err(AppError::Busy)), "{outcome:?}");
    assert_eq!(attempts.load(Ordering::SeqCst), ATTEMPTS);
    let events = history(&app, tenant, user).await;
    assert!(!events.contains(&UserEvent::UserDeactivated));
}

#[tokio::test]
async fn the_same_key_appends_once_and_a_different_command_under_it_is_refused() {
    let (_db, app) = app().await;
    let (tenant, user) = (Uuid::new_v4(), Uuid::new_v4());
    let first = invite(&app, tenant, user, "key-1").await;
    assert!(!first.replayed);
    // The same command again: it finds its own invitation. Staged again it is a replay.
    let ctx = CommandContext::new(tenant, "test", "key-1");
    let again = execute(&app, &ctx, |uow| {
        Box::pin(async move {
            uow.stage(
                &stream::<UserEvent>(user),
                &[UserEvent::UserInvited {
                    user_id: UserId::from_uuid(user),
                    email: Email::parse("staff@uow.example").unwrap(),
                    role: Role::Staff,
                    invited_by: None,
                }],
            );
            Ok(())
        })
    })
    .await;
    // Staged on a stream read at no version, the same event ids: the store's replay.
    let again = again.unwrap();
    assert!(again.replayed);
    assert_eq!(again.position, first.position);
    assert_eq!(history(&app, tenant, user).await.len(), 1);

    // Another command under the same key: some of its ids exist, others do not.
    let refused = execute(&app, &ctx, |uow| {
        Box::pin(async move {
            let user_stream = stream::<UserEvent>(user);
            uow.load::<User>(&user_stream).await?;
            uow.stage(
                &user_stream,
                &[
                    UserEvent::UserRoleChanged {
                        from: Role::Staff,
                        to: Role::Admin,
                    },
                    UserEvent::UserDeactivated,
                ],
            );
            Ok(())
        })
    })
    .await;
    assert!(
        matches!(refused, Err(AppError::IdempotencyMismatch)),
        "{refused:?}"
    );
    assert_eq!(history(&app, tenant, user).await.len(), 1);
}

#[tokio::test]
async fn vault_writes_commit_with_the_events_or_not_at_all() {
    let (db, app) = app().await;
    let (tenant, user) = (Uuid::new_v4(), Uuid::new_v4());
    invite(&app, tenant, user, "invite").await;
    let superuser = db.superuser_url_pool().await;
    let credentials = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from user_credentials where user_id = $1")
            .bind(user)
            .fetch_one(&superuser)
            .await
            .unwrap()
    };

    // A decision that fails after writing the vault leaves nothing behind.
    let ctx = CommandContext::fresh(tenant, "test");
    let failed = execute(&app, &ctx, |uow| {
        Box::pin(async move {
            let conn = uow.conn().await?;
            vault::users::insert(conn, tenant, user, "a@uow.example", "", "staff").await?;
            Err::<(), _>(AppError::conflict("changed my mind"))
        })
    })
    .await;
    assert!(matches!(failed, Err(AppError::Conflict { .. })));
    assert_eq!(credentials().await, 0);

    // A commit that loses a race rolls its vault write back with it: the second attempt
    // writes the same unique row again, and only its write stays.
    let attempts = AtomicUsize::new(0);
    let (attempts_ref, app_ref) = (&attempts, &app);
    execute(&app, &ctx, |uow| {
        Box::pin(async move {
            let user_stream = stream::<UserEvent>(user);
            uow.load::<User>(&user_stream).await?;
            let conn = uow.conn().await?;
            vault::users::insert(conn, tenant, user, "a@uow.example", "", "staff").await?;
            if attempts_ref.fetch_add(1, Ordering::SeqCst) == 0 {
                change_role(app_ref, tenant, user, Role::Admin).await;
            }
            uow.stage(&user_stream, &[UserEvent::SecondFactorEnabled]);
            Ok(())
        })
    })
    .await
    .unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(credentials().await, 1);
    assert_eq!(
        history(&app, tenant, user).await.last(),
        Some(&UserEvent::SecondFactorEnabled)
    );
}

/// Attaches `booking` to the conversation of `phone`, failing the decision after naming the
/// stream when `refuse`.
async fn attach(
    app: &App,
    tenant: Uuid,
    phone: &str,
    booking: Uuid,
    refuse: bool,
) -> Result<app::Committed<()>, AppError> {
    use domain::conversation::{Conversation, ConversationCommand};
    let ctx = CommandContext::new(tenant, "test", format!("attach-{booking}"));
    let phone = domain::values::PhoneNumber::parse(phone).unwrap();
    let phone = &phone;
    execute(app, &ctx, |uow| {
        Box::pin(async move {
            let conversation_ref = uow.conversation_of(phone).await?;
            let conversation = uow.load::<Conversation>(&conversation_ref).await?;
            if refuse {
                return Err(AppError::NotFound("booking"));
            }
            let events = Conversation::decide(
                &conversation,
                ConversationCommand::AttachBooking {
                    booking_id: domain::ids::BookingId::from_uuid(booking),
                },
            )?;
            uow.stage(&conversation_ref, &events);
            Ok(())
        })
    })
    .await
}

async fn keys_of(db: &TestDb, phone: &str) -> Vec<Uuid> {
    sqlx::query_scalar("select subject_id from customer_keys where phone = $1")
        .bind(phone)
        .fetch_all(&db.superuser_url_pool().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_customer_s_first_key_commits_with_the_events_it_sealed_or_not_at_all() {
    let (db, app) = app().await;
    let tenant = Uuid::new_v4();
    // Refused after naming the customer's stream: no key, so nothing of the phone, is kept.
    let refused = attach(&app, tenant, "+34600000101", Uuid::new_v4(), true).await;
    assert!(matches!(refused, Err(AppError::NotFound(_))), "{refused:?}");
    assert!(keys_of(&db, "+34600000101").await.is_empty());
    // Decided with nothing to append (attached already): no key either.
    let booking = Uuid::new_v4();
    attach(&app, tenant, "+34600000102", booking, false)
        .await
        .unwrap();
    let kept = keys_of(&db, "+34600000102").await;
    assert_eq!(kept.len(), 1);
    attach(&app, tenant, "+34600000102", booking, false)
        .await
        .unwrap();
    assert_eq!(keys_of(&db, "+34600000102").await, kept, "the same key");
    // The stream is named by the key's subject.
    let events = app
        .store
        .read_stream(
            tenant,
            &stream::<domain::conversation::ConversationEvent>(kept[0]),
            1,
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn customers_met_for_the_first_time_by_commands_at_once_get_one_key_and_one_stream() {
    let (db, app) = app().await;
    let tenant = Uuid::new_v4();
    let bookings: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
    // Eight writers on one new stream: each round one of them wins and the rest decide
    // again, so under load some may run out of attempts; they answer Busy (a 503 the caller
    // retries under the same key), as a client would retry here.
    let attached = futures::future::join_all(bookings.iter().map(|b| async {
        let mut outcome = attach(&app, tenant, "+34600000103", *b, false).await;
        for _ in 0..5 {
            if !matches!(outcome, Err(AppError::Busy)) {
                break;
            }
            outcome = attach(&app, tenant, "+34600000103", *b, false).await;
        }
        outcome
    }))
    .await;
    for outcome in &attached {
        assert!(outcome.is_ok(), "{outcome:?}");
    }
    let keys = keys_of(&db, "+34600000103").await;
    assert_eq!(keys.len(), 1);
    let events = app
        .store
        .read_stream(
            tenant,
            &stream::<domain::conversation::ConversationEvent>(keys[0]),
            1,
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 8, "every command's event, on the one stream");
    let streams: i64 = sqlx::query_scalar(
        "select count(distinct stream_id) from events where stream_type = 'conversation'",
    )
    .fetch_one(&db.superuser_url_pool().await)
    .await
    .unwrap();
    assert_eq!(streams, 1);
}

#[tokio::test]
async fn a_command_run_again_after_its_answer_was_lost_answers_as_the_first_run_did() {
    let (_db, app) = app().await;
    let (tenant, user) = (Uuid::new_v4(), Uuid::new_v4());
    let first = invite(&app, tenant, user, "key-1").await;
    // Another writer moves the stream on meanwhile.
    change_role(&app, tenant, user, Role::Admin).await;
    // The same command under the same key: on today's state the domain refuses it (the member
    // is invited already); decided on the state before its own events, it is the first run
    // again, and a replay.
    let again = invite(&app, tenant, user, "key-1").await;
    assert!(again.replayed);
    assert_eq!(again.position, first.position);
    assert_eq!(history(&app, tenant, user).await.len(), 2);
    // Under another key it is what it is: a second invitation, refused.
    let refused = try_invite(&app, tenant, user, "key-2").await;
    assert!(matches!(refused, Err(AppError::Rejected(_))), "{refused:?}");
}

/// A second process on the same database: its own kept states, as another command API's.
fn another_process(app: &App) -> App {
    App {
        states: app::StateCache::default(),
        ..app.clone()
    }
}

/// The conversation of `phone` as a whole read folds it, and the stream's name.
async fn whole_conversation(
    app: &App,
    tenant: Uuid,
    phone: &str,
) -> (
    eventstore::StreamRef,
    domain::conversation::ConversationState,
) {
    let phone = domain::values::PhoneNumber::parse(phone).unwrap();
    let conversation_ref = app::conversation::known_conversation(&app.store, tenant, &phone)
        .await
        .unwrap()
        .expect("a conversation");
    let recorded = app
        .store
        .read_stream(tenant, &conversation_ref, 1)
        .await
        .unwrap();
    let state =
        app::events::fold::<domain::conversation::Conversation>(&conversation_ref, recorded)
            .unwrap()
            .0;
    (conversation_ref, state)
}

/// The conversation of `phone` as `app` loads it in a command (from what it keeps).
async fn loaded_conversation(
    app: &App,
    tenant: Uuid,
    phone: &str,
) -> domain::conversation::ConversationState {
    let phone = domain::values::PhoneNumber::parse(phone).unwrap();
    let phone = &phone;
    let ctx = CommandContext::fresh(tenant, "test");
    execute(app, &ctx, |uow| {
        Box::pin(async move {
            let conversation_ref = uow.conversation_of(phone).await?;
            uow.load::<domain::conversation::Conversation>(&conversation_ref)
                .await
        })
    })
    .await
    .unwrap()
    .value
}

#[tokio::test]
async fn a_kept_conversation_reads_what_another_process_appended_and_folds_as_a_whole_read() {
    let (_db, a) = app().await;
    let b = another_process(&a);
    let tenant = Uuid::new_v4();
    let phone = "+34600000111";
    let bookings: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    attach(&a, tenant, phone, bookings[0], false).await.unwrap();
    attach(&a, tenant, phone, bookings[1], false).await.unwrap();
    // What a commit appended is kept as the state it made, at the version it made.
    let (conversation_ref, _) = whole_conversation(&a, tenant, phone).await;
    assert_eq!(a.states.kept_version(tenant, &conversation_ref), Some(2));
    // The other process appends twice; this one kept version 2 and reads what followed.
    attach(&b, tenant, phone, bookings[2], false).await.unwrap();
    attach(&b, tenant, phone, bookings[3], false).await.unwrap();
    let loaded = loaded_conversation(&a, tenant, phone).await;
    let (_, whole) = whole_conversation(&a, tenant, phone).await;
    assert_eq!(loaded, whole);
    let attached: Vec<Uuid> = loaded.bookings.iter().map(|b| b.uuid()).collect();
    assert_eq!(attached, bookings);
    assert_eq!(a.states.kept_version(tenant, &conversation_ref), Some(4));
    // And its next append expects version 4: committed, not a conflict.
    let fifth = Uuid::new_v4();
    attach(&a, tenant, phone, fifth, false).await.unwrap();
    assert_eq!(
        whole_conversation(&a, tenant, phone).await.1.bookings.len(),
        5
    );
}

/// Attaches `booking` under `key`, refusing when it is attached already (so that the same
/// command, run again later, is refused on the state of today).
async fn attach_once(
    app: &App,
    tenant: Uuid,
    phone: &str,
    booking: Uuid,
    key: &str,
) -> Result<app::Committed<()>, AppError> {
    use domain::conversation::{Conversation, ConversationCommand};
    let ctx = CommandContext::new(tenant, "test", key);
    let phone = domain::values::PhoneNumber::parse(phone).unwrap();
    let phone = &phone;
    let booking_id = domain::ids::BookingId::from_uuid(booking);
    execute(app, &ctx, |uow| {
        Box::pin(async move {
            let conversation_ref = uow.conversation_of(phone).await?;
            let conversation = uow.load::<Conversation>(&conversation_ref).await?;
            if conversation.bookings.contains(&booking_id) {
                return Err(AppError::conflict("attached already"));
            }
            let events = Conversation::decide(
                &conversation,
                ConversationCommand::AttachBooking { booking_id },
            )?;
            uow.stage(&conversation_ref, &events);
            Ok(())
        })
    })
    .await
}

#[tokio::test]
async fn a_command_run_again_whose_own_events_lie_in_a_kept_state_answers_as_the_first_run() {
    let (_db, app) = app().await;
    let tenant = Uuid::new_v4();
    let phone = "+34600000112";
    let booking = Uuid::new_v4();
    let first = attach_once(&app, tenant, phone, booking, "attach-once")
        .await
        .unwrap();
    // Another command moves the stream on: kept at version 2, the first run's event in it.
    attach(&app, tenant, phone, Uuid::new_v4(), false)
        .await
        .unwrap();
    let (conversation_ref, _) = whole_conversation(&app, tenant, phone).await;
    assert_eq!(app.states.kept_version(tenant, &conversation_ref), Some(2));
    // The first command again, its answer lost: on the kept state its own event is out of
    // sight and today's state refuses it; decided on the whole stream it is the first run.
    let again = attach_once(&app, tenant, phone, booking, "attach-once")
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.position, first.position);
    // Under another key it is refused.
    let refused = attach_once(&app, tenant, phone, booking, "attach-again").await;
    assert!(
        matches!(refused, Err(AppError::Conflict { .. })),
        "{refused:?}"
    );
}

/// Records a message `phone` wrote (sealed with their key, as a turn records it).
async fn receive(app: &App, tenant: Uuid, phone: &str, text: &str) {
    use domain::conversation::ConversationEvent;
    let ctx = CommandContext::fresh(tenant, "test");
    let from = domain::values::PhoneNumber::parse(phone).unwrap();
    let from = &from;
    execute(app, &ctx, |uow| {
        Box::pin(async move {
            let conversation_ref = uow.conversation_of(from).await?;
            uow.load::<domain::conversation::Conversation>(&conversation_ref)
                .await?;
            uow.stage(
                &conversation_ref,
                &[ConversationEvent::MessageReceived {
                    wamid: format!("wamid.{}", Uuid::new_v4()),
                    from: from.clone(),
                    profile_name: Some("Ana".into()),
                    content: domain::bot::Inbound::Text { body: text.into() },
                    received_at: chrono::Utc::now(),
                }],
            );
            Ok(())
        })
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_erasure_drops_the_kept_conversation_and_another_process_folds_it_to_nothing() {
    let (_db, a) = app().await;
    let b = another_process(&a);
    let tenant = Uuid::new_v4();
    let phone = "+34600000113";
    receive(&a, tenant, phone, "hola").await;
    // Both processes keep the conversation, the customer's phone revealed in it: the one that
    // appended, as its decision made it (the events before they were sealed); the other as
    // it read them. Both are the whole read's.
    let (conversation_ref, whole) = whole_conversation(&a, tenant, phone).await;
    assert_eq!(a.states.kept_version(tenant, &conversation_ref), Some(1));
    for process in [&a, &b] {
        let kept = loaded_conversation(process, tenant, phone).await;
        assert_eq!(kept, whole);
        assert_eq!(
            kept.phone.map(|p| p.as_str().to_owned()).as_deref(),
            Some(phone)
        );
    }
    assert_eq!(b.states.kept_version(tenant, &conversation_ref), Some(1));

    let ctx = CommandContext::fresh(tenant, "test");
    let customer = domain::values::PhoneNumber::parse(phone).unwrap();
    app::customers::erase(&a, &ctx, &customer).await.unwrap();
    // The erasing process keeps nothing of it.
    assert_eq!(a.states.kept_version(tenant, &conversation_ref), None);
    // The other still holds version 1 until its next load, which folds the erasure on it.
    let ctx = CommandContext::fresh(tenant, "test");
    let conversation_ref = &conversation_ref;
    let folded = execute(&b, &ctx, |uow| {
        Box::pin(async move {
            uow.load::<domain::conversation::Conversation>(conversation_ref)
                .await
        })
    })
    .await
    .unwrap()
    .value;
    assert_eq!(folded, domain::conversation::ConversationState::default());
    assert_eq!(b.states.kept_version(tenant, conversation_ref), Some(2));
}

#[tokio::test]
async fn a_stream_read_again_after_staging_to_it_is_kept_as_the_store_has_it() {
    use domain::conversation::{Conversation, ConversationCommand};
    let (_db, app) = app().await;
    let tenant = Uuid::new_v4();
    let phone = "+34600000114";
    receive(&app, tenant, phone, "hola").await;
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    let customer = domain::values::PhoneNumber::parse(phone).unwrap();
    let customer = &customer;
    let ctx = CommandContext::fresh(tenant, "test");
    // A decision that stages to the conversation, reads it again (the read lacks what it
    // staged), and stages more.
    execute(&app, &ctx, |uow| {
        Box::pin(async move {
            let conversation_ref = uow.conversation_of(customer).await?;
            for booking in [first, second] {
                let conversation = uow.load::<Conversation>(&conversation_ref).await?;
                let events = Conversation::decide(
                    &conversation,
                    ConversationCommand::AttachBooking {
                        booking_id: domain::ids::BookingId::from_uuid(booking),
                    },
                )?;
                uow.stage(&conversation_ref, &events);
            }
            Ok(())
        })
    })
    .await
    .unwrap();
    let (conversation_ref, whole) = whole_conversation(&app, tenant, phone).await;
    assert_eq!(whole.bookings.len(), 2);
    assert_eq!(loaded_conversation(&app, tenant, phone).await, whole);
    assert_eq!(app.states.kept_version(tenant, &conversation_ref), Some(3));
}
