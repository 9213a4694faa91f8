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


class EffectRefused(ForgeError):
    """The forge refused an effect definitely: resending the same request cannot succeed
    (a 4xx other than rate limits: 422 validation, 403 locked/archived, 404/410 gone).

    Terminal for that effect: the ledger records it `refused` and never sends it again,
    and the phase ends `failed`. `reason_class` is the short public name of why; the
    message (URLs, GitHub's text) stays in the database and the logs.
    """

    def __init__(self, message: str, *, status: int, reason_class: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason_class = reason_class or refusal_class(status)


def refusal_class(status: int) -> str:
    """The public reason class of a refusal with HTTP `status`."""
    match status:
        case 403:
            return "forbidden"
        case 404 | 410:
            return "gone"
        case 422:
            return "rejected"
        case _:
            return "refused"


class UncertainOutcome(ForgeError):
    """A mutation may or may not have been applied (5xx, timeout, dropped connection).

    Never resent blindly: the effect ledger reconciles it (DESIGN §5).
    """


class RateLimited(ForgeError):
    """The forge kept answering with rate limits after every allowed wait."""


class BadEvent(AgentWorkflowError):
    """A webhook payload is malformed or lacks a field the event needs."""
