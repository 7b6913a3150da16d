//! A customer's right to erasure. Their personal data in the log is sealed with their key
//! (`domain::personal`, `eventstore::personal`); erasing them deletes the key in the same
//! transaction as `CustomerErased` is appended, so that from that commit on every reader,
//! rebuild and new consumer reads stand-ins, and the read models scrub what they had shown when
//! they reach the event. Their bookings stay, with no one behind them: the business's counts
//! and revenue hold.

use domain::conversation::{Conversation, ConversationCommand, ConversationEvent};
use domain::decider::Decider as _;
use domain::values::PhoneNumber;

use crate::conversation::known_conversation;
use crate::{App, AppError, CommandContext, Committed, execute};

/// What an erasure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erased {
    /// The customer's bookings, kept with no one behind them.
    pub bookings: usize,
}

/// Erases `customer`. A phone the business never met (or already erased) is not found.
pub async fn erase(
    app: &App,
    ctx: &CommandContext,
    customer: &PhoneNumber,
) -> Result<Committed<Erased>, AppError> {
    let Some(conversation_ref) = known_conversation(&app.store, ctx.tenant_id, customer).await?
    else {
        return Err(AppError::NotFound("customer"));
    };
    let conversation_ref = &conversation_ref;
    execute(app, ctx, |uow| {
        Box::pin(async move {
            let conversation = uow.load::<Conversation>(conversation_ref).await?;
            let events = Conversation::decide(&conversation, ConversationCommand::Erase)?;
            let bookings = events
                .iter()
                .map(|e| match e {
                    ConversationEvent::CustomerErased { bookings } => bookings.len(),
                    _ => 0,
                })
                .sum();
            uow.stage(conversation_ref, &events);
            uow.erase_customer(customer).await?;
            Ok(Erased { bookings })
        })
    })
    .await
}
