"""Errors raised by neuro-hw.

Every error names *where* the problem is (file, node, field) and *why* (reason), so a user can fix the
input without reading a traceback. All inherit from :class:`NeuroHWError`.
"""

from __future__ import annotations


class NeuroHWError(Exception):
    """Base class: an error about user input, with its location.

    Parameters
    ----------
    reason:
        What is wrong, in plain words.
    file, node, field:
        Where it is wrong; any may be omitted when it does not apply.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        node: str | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = None if file is None else str(file)
        self.node = node
        self.field = field
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.file is not None:
            where.append(f"file '{self.file}'")
        if self.node is not None:
            where.append(f"node '{self.node}'")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        return (", ".join(where) + ": " if where else "") + self.reason

    def located(self, **where: str | None) -> NeuroHWError:
        """Return a copy of this error with missing location parts (file, node, field) filled in."""
        err = type(self).__new__(type(self))
        err.__dict__.update(self.__dict__)
        for key, value in where.items():
            if key not in ("file", "node", "field"):
                raise TypeError(f"unknown location {key!r}")
            if getattr(err, key) is None and value is not None:
                setattr(err, key, str(value))
        Exception.__init__(err, err._format())
        return err


class CircuitFileError(NeuroHWError):
    """A circuit or result file is missing, truncated, corrupt or not in the expected format."""


class ValidationError(NeuroHWError):
    """A circuit is structurally or numerically invalid (shapes, NaN/inf, dangling edges, ...)."""


class UnsupportedNodeError(NeuroHWError):
    """A NIR node type that neuro-hw does not (yet) support."""


class RuleError(NeuroHWError):
    """A plasticity rule is invalid: unknown symbol, wrong population, bad target, ..."""


class RuleSyntaxError(RuleError):
    """A rule string could not be parsed; the message shows the offending token with a caret."""

    def __init__(self, reason: str, text: str, position: int, **where: str | None) -> None:
        self.text = text
        self.position = position
        pointer = f"\n    {text}\n    {' ' * position}^"
        super().__init__(f"{reason} at column {position + 1}{pointer}", **where)


class InputError(NeuroHWError):
    """Simulation inputs (stimulus arrays, steps, dt, record specs) are invalid."""


class BackendUnavailableError(NeuroHWError):
    """The requested backend cannot run here (not installed, or not implemented: see :mod:`neuro_hw.backends`)."""
