//! Who issues a command, on behalf of which tenant, and the key that makes it idempotent.

use eventstore::{EventMetadata, RecordedEvent};
use uuid::Uuid;

/// The context every command runs in. Its idempotency key decides the ids of the events the
/// command appends: the same key, the same ids, so a retry is recognised by the store.
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub tenant_id: Uuid,
    /// As recorded in event metadata: `user:<id>`, `api_key:<id>`, `whatsapp:<wa_id>`,
    /// `operator:<id>`, `system:<component>`.
    pub actor: String,
    /// The HTTP request (or webhook delivery) that carried the command.
    pub request_id: Option<String>,
    /// A client's `Idempotency-Key`, a WhatsApp message id, a causing event's id, or a fresh
    /// one per request.
    pub idempotency_key: String,
    /// The business operation the command belongs to; derived from the key when `None`.
    pub correlation_id: Option<Uuid>,
    /// The event that caused the command (reactors).
    pub causation_id: Option<Uuid>,
}

impl CommandContext {
    pub fn new(
        tenant_id: Uuid,
        actor: impl Into<String>,
        idempotency_key: impl Into<String>,
    ) -> Self {
        Self {
            tenant_id,
            actor: actor.into(),
            request_id: None,
            idempotency_key: idempotency_key.into(),
            correlation_id: None,
            causation_id: None,
        }
    }

    /// A command with no key of its own: each request is a new operation.
    pub fn fresh(tenant_id: Uuid, actor: impl Into<String>) -> Self {
        Self::new(tenant_id, actor, Uuid::new_v4().to_string())
    }

    pub fn with_request_id(mut self, request_id: Option<String>) -> Self {
        self.request_id = request_id;
        self
    }

    pub fn with_correlation(mut self, correlation_id: Uuid) -> Self {
        self.correlation_id = Some(correlation_id);
        self
    }

    /// A reactor's command in answer to `event`: same operation, caused by it.
    pub fn caused_by(mut self, event: &RecordedEvent) -> Self {
        self.correlation_id = event.metadata.correlation_id;
        self.causation_id = Some(event.event_id);
        self
    }

    /// The metadata every event of this command carries.
    pub fn metadata(&self) -> EventMetadata {
        EventMetadata {
            actor: Some(self.actor.clone()),
            correlation_id: Some(self.correlation_id.unwrap_or_else(|| {
                eventstore::event_id_from_key(self.tenant_id, &self.idempotency_key, u32::MAX)
            })),
            causation_id: self.causation_id,
            request_id: self.request_id.clone(),
            // The span the command runs in: the request's, or the reactor's that handles the
            // causing event; its consumers' spans will be its children.
            traceparent: tracecontext::current(),
        }
    }

    /// An id derived from the key for something the command creates (a booking, a service),
    /// so a retry creates the same one. `what` keeps different kinds apart.
    pub fn derived_id(&self, what: &str) -> Uuid {
        eventstore::event_id_from_key(
            self.tenant_id,
            &format!("{what}|{}", self.idempotency_key),
            0,
        )
    }
}
