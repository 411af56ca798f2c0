"""Secrets never reach a log output: records are redacted before any handler writes them.

Two layers, so that neither alone can be bypassed:

- a log record factory, installed for the run: every record any logger makes (botocore's signed
  canonical request, urllib3, kubernetes, psycopg, redis, the checks' own) is redacted as it is
  made, before a handler sees it, whatever the handler and wherever it writes;
- a filter on every handler attached to the root logger while pytest's logging capture is on
  (live logging, ``--log-file``, the captured-log report section, ``caplog``): a record made
  some other way (``logging.makeLogRecord``, a library's own record factory) is redacted there.

Redacting a record masks its message (``msg % args``), its exception text and its stack. A
record without a secret is left untouched, so its ``args`` keep their types.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

_DONE = "_vcci_redacted"  # on a redacted record: four handlers, one redaction


class LogRedaction(logging.Filter):
    """Installed by an active run, removed when it ends."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self._redact = redact
        self._previous: Callable[..., logging.LogRecord] | None = None
        self._factory: Callable[..., logging.LogRecord] | None = None
        self._handlers: list[logging.Handler] = []
        self._active = False

    # -- the record factory --

    def install(self) -> None:
        """Redact every record made from now on (the factory wraps whatever was there)."""
        if self._active:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if self._active:
                self.redact(record)
            return record

        self._previous, self._factory, self._active = previous, factory, True
        logging.setLogRecordFactory(factory)

    def uninstall(self) -> None:
        """Restore the previous factory and take the filter off every handler it guarded."""
        self._active = False
        if self._factory is not None and logging.getLogRecordFactory() is self._factory:
            assert self._previous is not None
            logging.setLogRecordFactory(self._previous)
        # Else something wrapped our factory since: it stays in the chain, passing records on.
        for handler in self._handlers:
            handler.removeFilter(self)
        self._handlers.clear()

    # -- the handler filter --

    def guard(self, handlers: Iterable[logging.Handler]) -> None:
        """Redact what these handlers write (no-op for those already guarded)."""
        if not self._active:
            return
        for handler in handlers:
            if self not in handler.filters:
                handler.addFilter(self)
                self._handlers.append(handler)

    def guard_root(self) -> None:
        """Guard the handlers on the root logger: pytest attaches its own there."""
        self.guard(logging.getLogger().handlers)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._active:
            self.redact(record)
        return True

    # -- redacting one record --

    def redact(self, record: logging.LogRecord) -> None:
        done = getattr(record, _DONE, None)
        if done is not None and all(a is b for a, b in zip(done, _state(record), strict=True)):
            return
        redact = self._redact
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what logging would show, masked
            message = f"{record.msg!s} (arguments: {record.args!r})"
            record.msg, record.args = redact(message), ()
        else:
            masked = redact(message)
            if masked != message:
                record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            # Formatted now, masked, and kept where every Formatter looks first.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        setattr(record, _DONE, _state(record))


def _state(record: logging.LogRecord) -> tuple[Any, ...]:
    """What a redaction looked at, compared by identity: a record filled in after it was made
    (``logging.makeLogRecord``) or changed since is redacted again."""
    return (record.msg, record.args, record.exc_text, record.stack_info)
