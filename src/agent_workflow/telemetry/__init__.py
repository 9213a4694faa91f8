"""Prometheus metrics: their definitions (`metrics`), what records into them (`recorder`),
and the `/metrics` page (`exposition`, `server`). Only this package imports
`prometheus_client`; the core reports through its own port (`core.telemetry`).
OpenTelemetry traces, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, are `tracing`'s: the
only module that imports `opentelemetry`."""
