//! W3C Trace Context: how one business operation's spans find each other across processes.
//!
//! A WhatsApp message is handled by several processes in turn: the command API answers the
//! webhook and appends events, the relay publishes them, the sender sends the reply. Each hop
//! carries a `traceparent` (<https://www.w3.org/TR/trace-context/>): in an HTTP header, in the
//! events' metadata, in the NATS message's headers. A hop makes its span a child of the one it
//! was given ([`follow`]) and passes its own on ([`current`]).
//!
//! When no OpenTelemetry layer is installed (the default: traces are exported only when an OTLP
//! endpoint is configured), spans have no trace context, [`current`] is `None` and nothing is
//! carried: the off state costs a branch.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The header (HTTP and NATS) and metadata field that carries the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// `span`'s `traceparent`, when it is being traced.
pub fn of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::with_capacity(1);
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The current span's `traceparent`, when it is being traced.
pub fn current() -> Option<String> {
    of(&tracing::Span::current())
}

/// Makes `span` (not yet entered) a child of the remote span `traceparent` names. An absent or
/// malformed one leaves `span` where it is (a root, or under the current span).
pub fn follow(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        // Refused only for a span already started with another parent: it stays there.
        let _ = span.set_parent(context);
    }
}

/// The trace id (32 hex digits) and parent span id (16) of a well-formed version-00
/// `traceparent` (for readers of a carried one, e.g. tests).
pub fn parse(traceparent: &str) -> Option<(&str, &str)> {
    let mut parts = traceparent.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    (parts.next().is_none()
        && version == "00"
        && hex(trace, 32)
        && !zero(trace)
        && hex(span, 16)
        && !zero(span)
        && hex(flags, 2))
    .then_some((trace, span))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_is_read_only_when_well_formed() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            parse(good),
            Some(("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"))
        );
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn without_an_opentelemetry_layer_nothing_is_carried() {
        let span = tracing::info_span!("untraced");
        follow(
            &span,
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        assert_eq!(of(&span), None);
    }
}
