"""The one error type users see.

Every failure a user can cause or fix (a missing tool, a bad config value, an
unreachable chain, a compile error) is raised as :class:`BDFLError` with a
message naming the cause and, where there is one, the fix. The CLI prints both
and exits non-zero; nothing else is printed (no traceback) unless ``--debug``.
"""

from __future__ import annotations


class BDFLError(Exception):
    """A failure with a clear cause and, ideally, a fix."""

    exit_code: int = 1

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        if self.fix:
            return f"{self.message}\n  fix: {self.fix}"
        return self.message


class ConfigError(BDFLError):
    """A configuration value outside its allowed range; exit code 2."""

    exit_code = 2

    def __init__(self, field: str, message: str, allowed: str | None = None, fix: str | None = None) -> None:
        detail = f"{message} (allowed: {allowed})" if allowed else message
        super().__init__(f"config field '{field}': {detail}", fix=fix)
        self.field = field
        self.allowed = allowed
        self.detail = detail  # the text without the field prefix
