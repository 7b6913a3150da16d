//! One module per projection: how each event changes that projection's tables. Every function
//! runs inside the caller's tenant transaction and is called once per event, in stream order
//! (see [`crate::projection`]). Statements name the live tables; a rebuild runs the same ones
//! with `search_path` on its shadow schema. Every `match` over events is exhaustive, and the
//! labels written come from the domain.

pub mod agenda;
pub mod billing;
pub mod bookings;
pub mod catalog;
pub mod conversations;
pub mod integrations;
pub mod tenants;
pub mod usage;
