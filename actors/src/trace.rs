//! W3C trace context through the program: a request's incoming `traceparent` becomes the parent
//! of the span that handles it (webhook request, ArgoCD poll, watch batch), and that span's own
//! context is what the intents it produces carry in their `traceparent` header — so the SRE
//! domain's trace continues from ours.
//!
//! Spans are only recorded when `telemetry.otlp_endpoint` is set (the OpenTelemetry layer is
//! installed). Without it no span has a valid context: [`traceparent`] answers `None`, and the
//! webhook passes the sender's `traceparent` through unchanged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const HEADER: &str = "traceparent";

/// Whether spans are exported (set once the OpenTelemetry layer is installed).
static RECORDING: AtomicBool = AtomicBool::new(false);

/// Says that spans are recorded from now on (telemetry setup calls it when it installs the
/// OpenTelemetry layer). Until then the hot paths skip making spans only traces would use.
pub fn set_recording() {
    RECORDING.store(true, Ordering::Relaxed);
}

/// Whether spans are recorded (see [`set_recording`]).
pub fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

/// Makes `span` a child of the remote span `traceparent` names (ignored when malformed).
pub fn adopt_parent(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([(HEADER.to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// `span`'s W3C `traceparent`, when it is being recorded.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::with_capacity(1);
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(HEADER)
}

/// The current span's `traceparent` (see [`traceparent`]).
pub fn current() -> Option<String> {
    traceparent(&tracing::Span::current())
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_span_continues_the_incoming_trace_and_names_itself() {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("webhook");
            adopt_parent(&span, PARENT);
            let tp = span
                .in_scope(current)
                .expect("a recorded span has a traceparent");
            let parts: Vec<&str> = tp.split('-').collect();
            assert_eq!(parts[0], "00");
            assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace");
            assert_ne!(parts[2], "00f067aa0ba902b7", "its own span id");
            assert_eq!(parts[3], "01", "sampled");
            // A malformed parent starts a new trace instead.
            let other = tracing::info_span!("webhook");
            adopt_parent(&other, "00-zz-yy-01");
            let tp = traceparent(&other).unwrap();
            assert!(!tp.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
        });
    }

    #[test]
    fn without_the_opentelemetry_layer_there_is_no_traceparent() {
        let span = tracing::info_span!("webhook");
        adopt_parent(&span, PARENT);
        assert_eq!(traceparent(&span), None);
    }
}
