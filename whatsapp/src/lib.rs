//! The WhatsApp Cloud API boundary: the webhook payloads Meta sends (and their mapping to the
//! domain's message types), the `X-Hub-Signature-256` check, and the Graph API client.
//!
//! Knows Meta's wire formats and nothing of tenants, events or storage.

#![forbid(unsafe_code)]

pub mod client;
pub mod outbound;
pub mod signature;
pub mod webhook;

pub use client::{CloudApi, CloudApiError, PhoneNumberInfo};
pub use signature::{is_well_formed as is_well_formed_signature, verify_signature};
