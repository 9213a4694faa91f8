"""agent-workflow: GitHub issues → an AI coding agent → pull requests, every effect exactly once."""

__version__ = "0.1.0"
