"""GitHub-shaped API errors raised by the emulator's state and routes."""

from __future__ import annotations

from typing import Any

#: GitHub points every error at its docs; clients only display it.
DOCS_URL = "https://docs.github.com/rest"


class ApiError(Exception):
    """An error answer: status code plus GitHub's `{"message", "documentation_url", ...}` body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        errors: list[Any] | None = None,  # field-error objects, or plain strings
        documentation_url: str = DOCS_URL,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.errors = errors
        self.documentation_url = documentation_url
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body GitHub would send."""
        body: dict[str, Any] = {"message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        body["documentation_url"] = self.documentation_url
        body["status"] = str(self.status)
        return body


def not_found() -> ApiError:
    """GitHub's answer for a missing repository, issue, pull request or route."""
    return ApiError(404, "Not Found")


def validation_failed(*errors: dict[str, Any]) -> ApiError:
    """GitHub's 422 with its list of field errors."""
    return ApiError(422, "Validation Failed", errors=list(errors))


def missing_field(resource: str, field: str) -> ApiError:
    """A required field was absent or empty."""
    return validation_failed({"resource": resource, "code": "missing_field", "field": field})
