"""Forms generated from a component's Params schema, validated as the user types.

Each field is checked with ``ParamSchema.validate`` and the owner label the CLI uses,
so the message under a field is word for word what ``demtui run --set`` would print.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select

from demtui.errors import DemtuiError
from demtui.params import Param, ParamSchema


def text_of(value: Any) -> str:
    """A param value as the user would type it (fractions of 255 stay fractions)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        on_grid = 0 < value < 1 and abs(value * 255 - round(value * 255)) < 1e-9
        return f"{round(value * 255)}/255" if on_grid else f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def on_off(value: bool) -> str:
    """A checkbox's state in words, so it reads without colour (and at 80 columns)."""
    return "on (true)" if value else "off (false)"


def describe(p: Param) -> str:
    rng = p.describe_range()
    return f"{p.name} ({p.type}{', ' + rng if rng else ''}; default {text_of(p.default) or 'empty'}): {p.help}"


class ParamForm(Vertical):
    """One row per Param: name, an input that fits its type, and an inline error line."""

    class Edited(Message):
        def __init__(self, form: "ParamForm", name: str) -> None:
            super().__init__()
            self.form, self.name = form, name

    def __init__(self, section: str, owner: str, params: ParamSchema, values: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.section, self.owner, self.params = section, owner, params
        self.initial = dict(values or {})
        self.add_class("param-form")

    def field_id(self, name: str) -> str:
        return f"p-{self.section}-{name}"

    def compose(self) -> ComposeResult:
        if not len(self.params):
            yield Label("no parameters", classes="param-none")
        for p in self.params:  # a two-column grid: name | field (errors are mounted when needed)
            yield Label(p.name, classes="param-name")
            yield self._field(p, self.initial.get(p.name, p.default))

    def _field(self, p: Param, value: Any) -> Widget:
        fid = self.field_id(p.name)
        if p.type == "bool" and isinstance(value, bool):
            field: Widget = Checkbox(on_off(value), value=value, id=fid, compact=True)
        elif p.type == "choice" and value in p.choices:
            field = Select([(c, c) for c in p.choices], value=value, allow_blank=False, id=fid, compact=True)
        else:
            placeholder = "empty = none" if p.nullable else p.describe_range() or p.type
            field = Input(text_of(value), placeholder=placeholder, id=fid, compact=True)
        field.tooltip = describe(p)
        return field

    def on_mount(self) -> None:
        for p in self.params:
            self.check(p.name)

    def raw(self, name: str) -> Any:
        field = self.query_one(f"#{self.field_id(name)}")
        if isinstance(field, Checkbox):
            return field.value
        if isinstance(field, Select):
            return None if field.value is Select.NULL else field.value
        value = field.value.strip()  # type: ignore[attr-defined]
        param = self.params.get(name)
        return None if value == "" and param is not None and param.nullable else value

    def values(self) -> dict[str, Any]:
        return {p.name: self.raw(p.name) for p in self.params}

    def set_value(self, name: str, value: Any) -> None:
        """Set a field from code (tests, spec loading) the way typing would."""
        field = self.query_one(f"#{self.field_id(name)}")
        if isinstance(field, Checkbox):
            field.value = bool(value) if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
        elif isinstance(field, Select):
            field.value = value
        else:
            field.value = text_of(value)  # type: ignore[attr-defined]
        self.check(name)

    def check(self, name: str) -> str:
        """Validate one field; shows and returns the CLI's sentence, or '' when it is fine."""
        try:
            self.params.validate({name: self.raw(name)}, owner=self.owner, fill=False)
            message = ""
        except DemtuiError as exc:
            message = str(exc)
        error_id = f"e-{self.section}-{name}"
        field = self.query_one(f"#{self.field_id(name)}")
        field.set_class(bool(message), "-invalid")
        found = self.query(f"#{error_id}")
        if message and found:
            found.first(Label).update(Text(message))  # literal: messages quote user text
        elif message:
            self.mount(Label(Text(message), id=error_id, classes="param-error"), after=field)
        elif found:
            found.remove()
        return message

    def errors(self) -> dict[str, str]:
        return {p.name: msg for p in self.params if (msg := self.check(p.name))}

    def help_for(self, widget: Widget) -> str:
        for p in self.params:
            if widget.id == self.field_id(p.name):
                return describe(p)
        return ""

    def _edited(self, widget: Widget | None) -> None:
        for p in self.params:
            if widget is not None and widget.id == self.field_id(p.name):
                self.check(p.name)
                self.post_message(self.Edited(self, p.name))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._edited(event.input)

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        event.checkbox.label = on_off(event.value)
        self._edited(event.checkbox)

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._edited(event.select)
