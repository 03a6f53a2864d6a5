"""User errors on the flow path: one line on the console, no retries, the traceback only with --debug.

A user error (bad data, bad params, a missing file, a model folder that is not one) is reported by
the entry point's ``main`` as one ``error: ...`` line with exit code 2. Prefect would log the same
exception three or four times with two tracebacks on the way up (task failed, task state, flow
failed, flow state): :func:`quiet_user_errors` keeps those records off the console (the Prefect
API and UI still get them) unless ``--debug`` is given. :func:`retry_unless_user_error` keeps a
task's I/O retries for transient errors only: retrying a failed validation cannot help.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from capmix.config import ParamsError
from capmix.data.validation import DataValidationError
from capmix.modelfiles import ModelFileError

#: exceptions that mean "the input is wrong", each with a message that says how to fix it
USER_ERRORS: tuple[type[BaseException], ...] = (DataValidationError, ParamsError, ModelFileError, ValueError,
                                                LookupError, FileNotFoundError)
_NAMES = tuple(cls.__name__ for cls in USER_ERRORS)
T = TypeVar("T")


class _UserErrorFilter(logging.Filter):
    """Drops the console records that repeat a user error the entry point reports itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            return not isinstance(exc, USER_ERRORS)
        if record.levelno < logging.ERROR or not record.name.startswith("prefect"):
            return True
        # "Finished in state Failed('... DataValidationError: ...')": the same error once more
        return not any(name in record.getMessage() for name in _NAMES)


def _console_handlers() -> list[logging.Handler]:
    found: dict[int, logging.Handler] = {}
    # Prefect's console handler sits on the root logger (its flow/task run loggers propagate to it)
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in list(logging.Logger.manager.loggerDict)
                                      if n.startswith("prefect"))]
    for logger in loggers:
        for h in logger.handlers:
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                found[id(h)] = h
    return list(found.values())


@contextmanager
def quiet_user_errors(debug: bool = False) -> Iterator[None]:
    """While active (and not ``debug``), Prefect's console handlers skip records of user errors."""
    if debug:
        yield
        return
    import prefect  # noqa: F401  (importing Prefect sets up its console handler)

    handlers, flt = _console_handlers(), _UserErrorFilter()
    for h in handlers:
        h.addFilter(flt)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(flt)


def run_main(call: Callable[[], T], debug: bool, errors: tuple[type[BaseException], ...] = USER_ERRORS,
             write_failure: Callable[[OSError], str] | None = None) -> tuple[int, T | None]:
    """An entry point's ``main`` around its flow: ``(0, result)``, or ``(2, None)`` after one ``error: ...``
    line for one of ``errors`` (raised with ``debug``) or, with ``write_failure``, for an ``OSError``
    (a failed write: ``write_failure`` says what to do)."""
    try:
        with quiet_user_errors(debug):
            return 0, call()
    except errors as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2, None
    except OSError as exc:
        if write_failure is None:
            raise
        print(f"error: {write_failure(exc)}", file=sys.stderr)
        return 2, None


def retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry transient failures, never a user error."""
    try:
        state.result()
    except USER_ERRORS:
        return False
    except Exception:  # noqa: BLE001 - anything else may be transient (a busy file system, a lock)
        return True
    return True
