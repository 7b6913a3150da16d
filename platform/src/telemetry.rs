//! Structured logs with `tracing`, and traces over OTLP when an endpoint is configured.
//!
//! Traces are off by default. With `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, the spans of this platform's own crates are
//! exported as OTLP over HTTP (protobuf) from the SDK's batch thread, named by
//! `OTEL_SERVICE_NAME` or the binary's name. One business operation is one trace across the
//! services: see the `tracecontext` crate for how the context travels.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::settings::{LogFormat, LogSettings};

/// What the trace exporter takes: the spans of the request, command, relay, projection and
/// sender paths, not the libraries' inner workings (each SQL statement, each HTTP/2 frame).
const TRACED: &str = "info,sqlx=off,hyper=off,hyper_util=off,h2=off,tower=off,reqwest=off,\
                      async_nats=off,rustls=off,lettre=off";

/// Held for the life of the process: dropping it sends the spans still buffered.
#[must_use = "dropping it stops the trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("cannot send the last traces: {err}");
        }
    }
}

/// Installs the global subscriber: logs as configured (`RUST_LOG` overrides the filter), and
/// spans exported over OTLP when the environment names an endpoint. `service` names the traces
/// when `OTEL_SERVICE_NAME` does not.
pub fn init(settings: &LogSettings, service: &'static str) -> Telemetry {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let logs = match settings.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().with_filter(filter).boxed(),
    };
    let (provider, traces) = match exporter(service) {
        Ok(Some(provider)) => {
            let tracer = provider.tracer(service);
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(EnvFilter::new(TRACED));
            (Some(provider), Some(layer))
        }
        Ok(None) => (None, None),
        Err(err) => {
            eprintln!("traces are off: cannot build the OTLP exporter: {err}");
            (None, None)
        }
    };
    // A second init (tests running several services in one process) keeps the first.
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init();
    Telemetry { provider }
}

/// The tracer provider, when an OTLP endpoint is configured.
fn exporter(service: &'static str) -> anyhow::Result<Option<SdkTracerProvider>> {
    let configured = |name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    if !configured("OTEL_EXPORTER_OTLP_ENDPOINT")
        && !configured("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    {
        return Ok(None);
    }
    // The builder reads the endpoint, headers and timeout from the standard variables.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_owned());
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(name).build())
            .build(),
    ))
}
