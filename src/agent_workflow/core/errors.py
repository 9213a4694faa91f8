"""One root exception; every subclass says when it is raised."""


class AgentWorkflowError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(AgentWorkflowError):
    """Configuration is missing or malformed (raised at start, before any state changes)."""


class LeaseLost(AgentWorkflowError):
    """A fenced write found a newer fence: another worker took the phase over.

    The holder must stop at once and perform no effects (G5).
    """


class PhaseBusy(AgentWorkflowError):
    """An event cannot be applied yet (e.g. a `/retry` while the blocked attempt's effects
    are still being performed elsewhere). The delivery stays unrouted and is routed again.
    """


class ForgeError(AgentWorkflowError):
    """The forge refused a request definitely (4xx other than the handled ones)."""


class UncertainOutcome(ForgeError):
    """A mutation may or may not have been applied (5xx, timeout, dropped connection).

    Never resent blindly: the effect ledger reconciles it (DESIGN §5).
    """


class RateLimited(ForgeError):
    """The forge kept answering with rate limits after every allowed wait."""


class BadEvent(AgentWorkflowError):
    """A webhook payload is malformed or lacks a field the event needs."""
