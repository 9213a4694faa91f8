"""The durable core: events, phases, the router and the effect ledger."""
