"""``key=value`` command lines for rlaux's small tools (evaluate, report, probe).

Each tool declares its keys with a type; :func:`parse_kv` checks the command line against
them and raises :class:`UsageError` naming the bad key or value and the valid choices
(the tools print ``rlaux: error: ...`` and exit with status 2, as ``rlaux.train`` does).
Values are taken literally (paths may contain ``=`` and ``,``, as Hydra's multirun folder
names do); a list key may be repeated (``runs=a runs=b``) or given as ``runs=[a,b]``.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from rlaux.config import ConfigError
from rlaux.errors import UserError
from rlaux.objectives.base import IncompatibleObjectiveError

_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")


class UsageError(UserError, ValueError):
    """A bad command line: unknown key, malformed item or bad value."""


#: What every command line prints as one ``rlaux: error:`` line (exit status 2): a
#: :class:`UserError`, and the user errors of the modules that do not derive from it yet
#: (a registry's ``KeyError`` carries its message as its first argument).
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ConfigError, IncompatibleObjectiveError, KeyError)


@dataclass(frozen=True)
class Key:
    """One accepted key: its type (``str``, ``int``, ``float``, ``bool`` or ``list``), default,
    allowed choices (optional) and a one-line help text."""

    type: type
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] | None = None


def _convert(key: str, raw: str, spec: Key) -> Any:
    if raw.lower() in ("null", "none") and spec.type is not bool and spec.choices is None:
        return None
    if spec.type is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise UsageError(f"{key}={raw!r} is not a boolean; use {key}=true or {key}=false")
    if spec.type in (int, float):
        try:
            value = spec.type(raw)
        except ValueError:
            raise UsageError(f"{key}={raw!r} is not {'an integer' if spec.type is int else 'a number'}") from None
    else:
        value = raw
    if spec.choices is not None and value not in spec.choices:
        raise UsageError(f"{key}={raw!r} is invalid; valid choices: {', '.join(map(str, spec.choices))}")
    return value


def _split_list(raw: str) -> list[str]:
    if raw.startswith("[") and raw.endswith("]"):
        return [v.strip() for v in raw[1:-1].split(",") if v.strip()]
    return [raw]


def parse_kv(argv: Sequence[str], keys: dict[str, Key], required: Sequence[Sequence[str]] = ()) -> dict[str, Any]:
    """Parse ``key=value`` items against ``keys``; returns every key (defaults filled in).

    ``required``: groups of keys of which at least one must be given (e.g. ``[("run", "checkpoint")]``).
    """
    values: dict[str, Any] = {k: (list(spec.default or []) if spec.type is list else spec.default) for k, spec in keys.items()}
    given: set[str] = set()
    for item in argv:
        if "=" not in item:
            raise UsageError(f"argument {item!r} is not key=value; valid keys: {', '.join(keys)}")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key not in keys:
            close = difflib.get_close_matches(key, list(keys), n=2)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise UsageError(f"unknown key {key!r}.{hint} Valid keys: {', '.join(keys)}")
        spec = keys[key]
        if spec.type is list:
            if key not in given:
                values[key] = []
            values[key] += _split_list(raw)
        else:
            values[key] = _convert(key, raw, spec)
        given.add(key)
    for group in required:
        if not given.intersection(group):
            raise UsageError(f"give {' or '.join(k + '=...' for k in group)}")
    return values


def usage(prog: str, keys: dict[str, Key]) -> str:
    """A help text listing the keys."""
    width = max(len(k) for k in keys)
    lines = [f"usage: python -m {prog} key=value ...", ""]
    for k, spec in keys.items():
        default = "" if spec.default in (None, [], "") else f" (default: {spec.default})"
        lines.append(f"  {k.ljust(width)}  {spec.help}{default}")
    return "\n".join(lines)


def fail(message: Any) -> NoReturn:
    """Print ``rlaux: error: message`` to stderr and exit with status 2."""
    print(f"rlaux: error: {message}", file=sys.stderr)
    sys.exit(2)


def error_message(exc: BaseException) -> Any:
    """What ``rlaux: error:`` prints for a user error (a ``KeyError``'s message, not its repr)."""
    return exc.args[0] if isinstance(exc, KeyError) and exc.args else exc


def run_cli(prog: str, keys: dict[str, Key], argv: Sequence[str] | None, body: Callable[[dict[str, Any]], Any],
            required: Sequence[Sequence[str]] = ()) -> Any:
    """Parse ``argv`` (default ``sys.argv[1:]``), print help for ``-h``/``--help``, and call
    ``body(values)``; the :data:`USER_ERRORS` become ``rlaux: error: ...``, exit 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help", "help") for a in args):
        print(usage(prog, keys))
        return None
    try:
        values = parse_kv(args, keys, required)
        return body(values)
    except USER_ERRORS as exc:
        fail(error_message(exc))
