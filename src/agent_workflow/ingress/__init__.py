"""Ingress: GitHub webhooks in, durable inbox rows out (DESIGN §4.1).

`create_app` is the HTTP front door; `parse` turns a payload into an `Event`
with the configured `Triggers` (once: the event is stored with the delivery and
routed as stored); `verify` checks signatures.
"""

from agent_workflow.ingress.app import OnAccepted, create_app
from agent_workflow.ingress.events import Ignored, Triggers, parse
from agent_workflow.ingress.signature import Verdict, sign, verify

__all__ = [
    "Ignored",
    "OnAccepted",
    "Triggers",
    "Verdict",
    "create_app",
    "parse",
    "sign",
    "verify",
]
