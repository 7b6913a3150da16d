//! The domain's event history as the event store's readers need it.

/// The domain's upcasting steps registered with the store's reader, so that every service
/// reads old payloads in their current shape.
pub fn upcasters() -> eventstore::Upcasters {
    domain::upcast::steps()
        .into_iter()
        .fold(eventstore::Upcasters::new(), |u, step| {
            u.register(step.event_type, step.from_version, step.step)
        })
}
