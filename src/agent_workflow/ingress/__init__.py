"""Ingress: GitHub webhooks in, durable inbox rows out (DESIGN §4.1).

`create_app` is the HTTP front door; `parse` turns a payload into an `Event`
(the same function routing uses on the stored row); `verify` checks signatures.
"""

from agent_workflow.ingress.app import OnAccepted, create_app
from agent_workflow.ingress.events import DEFAULT_TRIGGERS, Ignored, Triggers, parse
from agent_workflow.ingress.signature import Verdict, sign, verify

__all__ = [
    "DEFAULT_TRIGGERS",
    "Ignored",
    "OnAccepted",
    "Triggers",
    "Verdict",
    "create_app",
    "parse",
    "sign",
    "verify",
]
