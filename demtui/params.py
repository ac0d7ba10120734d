"""The typed parameter schema every component shares.

One schema drives CLI flags (``--set attack.eps=10/255``), TOML validation and the TUI's
forms, so a value is checked the same way wherever it comes from. Plain data: importing
this module never imports torch.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from demtui.errors import ParamError, did_you_mean

ParamType = Literal["int", "float", "bool", "str", "choice", "ints"]

#: Set by the registry while it calls a plugin's hooks: record problems instead of raising,
#: so one bad record is reported by name and the plugin's other records still load.
_DEFERRED: contextvars.ContextVar[bool] = contextvars.ContextVar("demtui_deferred_checks", default=False)


@contextlib.contextmanager
def deferred_checks() -> Iterator[None]:
    """Inside this block, invalid Params and component records note their problem instead of raising."""
    token = _DEFERRED.set(True)
    try:
        yield
    finally:
        _DEFERRED.reset(token)


def checks_deferred() -> bool:
    return _DEFERRED.get()


@dataclass(frozen=True)
class Param:
    """One tunable knob: its name, type, default, bounds and a line of help."""

    name: str
    type: ParamType
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    min_inclusive: bool = True
    choices: tuple[str, ...] = ()
    nullable: bool = False
    #: Why this Param is unusable (set only while checks are deferred, see deferred_checks), else "".
    problem: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            self._check_declaration()
        except ParamError as exc:
            if not checks_deferred():
                raise
            object.__setattr__(self, "problem", str(exc))

    def _check_declaration(self) -> None:
        if not isinstance(self.name, str) or not self.name.replace("_", "").isalnum():
            raise ParamError(f"Parameter name '{self.name}' must be letters, digits and underscores.")
        if self.type not in _CONVERTERS:
            raise ParamError(f"Parameter '{self.name}' has type {self.type!r}; use one of {', '.join(_CONVERTERS)}.")
        if self.type == "choice" and not self.choices:
            raise ParamError(f"Parameter '{self.name}' is a choice but lists no choices.")
        if self.default is not None or not self.nullable:
            # An invalid default is a plugin bug; report it where the plugin is loaded.
            self.coerce(self.default, owner="default of")

    def describe_range(self) -> str:
        """Human-readable bounds, e.g. '(0, 1]' or 'one of: a, b'."""
        if self.type == "choice":
            return "one of: " + ", ".join(self.choices)
        if self.min is None and self.max is None:
            return ""
        lo = "-inf" if self.min is None else _fmt(self.min)
        hi = "inf" if self.max is None else _fmt(self.max)
        return f"{'[' if self.min_inclusive else '('}{lo}, {hi}]"

    def coerce(self, value: Any, owner: str = "") -> Any:
        """Return ``value`` converted to this param's type, or raise a ParamError sentence."""
        label = f"{owner} {self.name}".strip() if owner else self.name
        if value is None or (isinstance(value, str) and value.lower() in {"none", "null"} and self.nullable):
            if self.nullable:
                return None
            raise ParamError(f"Parameter '{label}' needs a value; it cannot be empty.")
        try:
            out = _CONVERTERS[self.type](value, self)
        except (TypeError, ValueError, ZeroDivisionError):
            raise ParamError(
                f"Parameter '{label}' expects {_TYPE_WORDS[self.type]}, got {value!r}."
            ) from None
        self._check_bounds(out, label)
        return out

    def _check_bounds(self, value: Any, label: str) -> None:
        if self.type == "choice":
            if value not in self.choices:
                raise ParamError(
                    f"Parameter '{label}' must be one of {', '.join(self.choices)}, got {value!r}."
                    + did_you_mean(str(value), self.choices)
                )
            return
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if isinstance(v, float) and not math.isfinite(v):
                bounded = self.min is not None and self.max is not None
                where = f" in {self.describe_range()}" if bounded else ""
                raise ParamError(f"Parameter '{label}' must be a finite number{where}, got {v}.")
            low_bad = self.min is not None and (v < self.min if self.min_inclusive else v <= self.min)
            high_bad = self.max is not None and v > self.max
            if low_bad or high_bad:
                raise ParamError(
                    f"Parameter '{label}' must be in {self.describe_range()}, got {_fmt(v)}."
                )


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _to_float(value: Any, _: Param) -> float:
    """Floats accept fractions such as '10/255', the way the paper writes budgets."""
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, str):
        return float(Fraction(value.strip())) if "/" in value else float(value)
    return float(value)


def _to_int(value: Any, _: Param) -> int:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError
        return int(value)
    return int(str(value).strip()) if isinstance(value, str) else int(value)


def _to_bool(value: Any, _: Param) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError


def _to_ints(value: Any, p: Param) -> list[int]:
    if isinstance(value, str):
        parts = [s for s in value.replace(" ", "").split(",") if s]
    elif isinstance(value, Iterable):
        parts = list(value)
    else:
        parts = [value]
    return [_to_int(v, p) for v in parts]


_CONVERTERS = {
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "str": lambda v, _: str(v),
    "choice": lambda v, _: str(v),
    "ints": _to_ints,
}
_TYPE_WORDS = {
    "int": "a whole number",
    "float": "a number (fractions like 10/255 are fine)",
    "bool": "true or false",
    "str": "text",
    "choice": "one of the listed choices",
    "ints": "a comma-separated list of whole numbers",
}


@dataclass(frozen=True)
class Rule:
    """A check across a component's parameters, run whenever a full set is validated (spec time).

    ``check(values) -> bool`` gets the coerced values and returns True when they are fine;
    ``message`` says what is required and may name values, e.g. ``"kernel must be odd, got {kernel}"``.
    Rules are plain functions in the plugin's metadata module (no torch).
    """

    message: str
    check: Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class ParamSchema:
    """An ordered set of Params with validation of a whole mapping at once."""

    params: tuple[Param, ...] = field(default_factory=tuple)
    rules: tuple[Rule, ...] = ()

    def __iter__(self):
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def get(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def with_defaults(self, overrides: Mapping[str, Any], owner: str = "") -> "ParamSchema":
        """A copy whose defaults are replaced (registry.toml's per-component defaults)."""
        self.validate(overrides, owner=owner, fill=False)
        new = []
        for p in self.params:
            if p.name in overrides:
                new.append(_replace_default(p, p.coerce(overrides[p.name], owner)))
            else:
                new.append(p)
        out = ParamSchema(tuple(new), self.rules)
        out.validate({}, owner=owner)  # the new defaults must still satisfy the rules
        return out

    def validate(self, values: Mapping[str, Any], owner: str = "", fill: bool = True) -> dict[str, Any]:
        """Coerce every value; unknown names suggest the closest known one."""
        out = self.defaults() if fill else {}
        for key, value in values.items():
            param = self.get(key)
            if param is None:
                where = f" of '{owner}'" if owner else ""
                known = ", ".join(self.names()) or "none"
                raise ParamError(
                    f"Unknown parameter '{key}'{where}." + did_you_mean(key, self.names())
                    + f" Known parameters: {known}."
                )
            out[key] = param.coerce(value, owner)
        if fill:
            self.check_rules(out, owner)
        return out

    def check_rules(self, values: Mapping[str, Any], owner: str = "") -> None:
        """Raise a ParamError sentence for the first rule the full ``values`` break."""
        for rule in self.rules:
            try:
                ok = rule.check(dict(values))
                text = rule.message.format(**values)
            except Exception as exc:  # a rule is plugin code: say so instead of crashing
                raise ParamError(f"A parameter rule of '{owner or 'this component'}' ({rule.message!r}) raised "
                                 f"{type(exc).__name__}: {exc}; fix the rule in its plugin.") from None
            if not ok:
                where = f" of '{owner}'" if owner else ""
                raise ParamError(f"Parameters{where} break a rule: {text}.")


def _replace_default(p: Param, default: Any) -> Param:
    from dataclasses import replace

    return replace(p, default=default)


def schema(*params: Param, rules: Iterable[Rule] = ()) -> ParamSchema:
    """Shorthand used by plugins: ``params=schema(Param(...), Param(...), rules=[Rule(...)])``."""
    return ParamSchema(tuple(params), tuple(rules))
