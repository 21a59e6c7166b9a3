"""Parse the Arrow type strings that ``@quiver.udf(returns=...)`` accepts."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import pyarrow as pa

ACCEPTED_FORMS = (
    "string, large_string, binary, large_binary, bool, int8, int16, int32, int64, uint8, "
    "uint16, uint32, uint64, float16, float32, float64, date32, date64, null, "
    "timestamp[UNIT] or timestamp[UNIT, tz=ZONE] (UNIT one of s, ms, us, ns), duration[UNIT], "
    "decimal128(PRECISION, SCALE), decimal256(PRECISION, SCALE), list<T>, large_list<T>, "
    "map<KEY, VALUE>, struct<NAME: T, ...>; or a pyarrow.DataType"
)

# The names on the left are quiver's spellings; the aliases are what str(pa.DataType) prints,
# so that parse_type(str(t)) == t for every type listed here.
_SIMPLE: dict[str, Callable[[], pa.DataType]] = {
    "string": pa.string,
    "utf8": pa.string,
    "large_string": pa.large_string,
    "large_utf8": pa.large_string,
    "binary": pa.binary,
    "large_binary": pa.large_binary,
    "bool": pa.bool_,
    "boolean": pa.bool_,
    "int8": pa.int8,
    "int16": pa.int16,
    "int32": pa.int32,
    "int64": pa.int64,
    "uint8": pa.uint8,
    "uint16": pa.uint16,
    "uint32": pa.uint32,
    "uint64": pa.uint64,
    "float16": pa.float16,
    "halffloat": pa.float16,
    "float32": pa.float32,
    "float": pa.float32,
    "float64": pa.float64,
    "double": pa.float64,
    "date32": pa.date32,
    "date64": pa.date64,
    "null": pa.null,
}
_DATE_UNITS = {"date32": "day", "date64": "ms"}
_TIME_UNITS = ("s", "ms", "us", "ns")


def as_data_type(value: pa.DataType | str) -> pa.DataType:
    """Return ``value`` as a pyarrow DataType, parsing it when it is a string."""
    if isinstance(value, pa.DataType):
        return value
    if isinstance(value, str):
        return parse_type(value)
    raise TypeError(
        f"returns= must be a pyarrow.DataType or a type string, not {type(value).__name__}; "
        f"accepted forms: {ACCEPTED_FORMS}"
    )


def parse_type(text: str) -> pa.DataType:
    """Parse a type string such as ``"list<int64>"`` into a pyarrow DataType.

    Raises ValueError, listing the accepted forms, for anything else.
    """
    parser = _TypeParser(text)
    try:
        result = parser.parse_type()
        parser.expect_end()
    except _ParseError as exc:
        raise ValueError(
            f"unknown type {text!r}: {exc}. Accepted forms: {ACCEPTED_FORMS}"
        ) from None
    return result


class _ParseError(Exception):
    """Signal a parse failure inside the parser; parse_type adds context as a ValueError."""


class _TypeParser:
    """Recursive-descent parser over one type string."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse_type(self) -> pa.DataType:
        """Parse one type at the current position."""
        start = self.pos
        name = self.identifier()
        if name in _DATE_UNITS and self.peek() == "[":
            self.expect("[")
            self.expect_word(_DATE_UNITS[name])
            self.expect("]")
            return _SIMPLE[name]()
        if name in _SIMPLE:
            return _SIMPLE[name]()
        if name in ("timestamp", "duration"):
            return self.temporal(name)
        if name in ("decimal128", "decimal256"):
            return self.decimal(name)
        if name in ("list", "large_list"):
            return self.list_type(name)
        if name == "map":
            return self.map_type()
        if name == "struct":
            return self.struct_type()
        raise _ParseError(f"{name!r} at offset {start} is not a type name")

    def temporal(self, name: str) -> pa.DataType:
        """Parse ``[UNIT]`` or ``[UNIT, tz=ZONE]`` after timestamp / duration."""
        self.expect("[")
        unit = self.identifier()
        if unit not in _TIME_UNITS:
            raise _ParseError(f"time unit {unit!r} is not one of {', '.join(_TIME_UNITS)}")
        tz = None
        if name == "timestamp" and self.peek() == ",":
            self.expect(",")
            self.expect_word("tz")
            self.expect("=")
            tz = self.until("]").strip()
            if not tz:
                raise _ParseError("empty time zone")
        self.expect("]")
        return pa.timestamp(unit, tz=tz) if name == "timestamp" else pa.duration(unit)

    def decimal(self, name: str) -> pa.DataType:
        """Parse ``(PRECISION, SCALE)`` after decimal128 / decimal256."""
        self.expect("(")
        precision = self.integer()
        self.expect(",")
        scale = self.integer()
        self.expect(")")
        factory = pa.decimal128 if name == "decimal128" else pa.decimal256
        try:
            return factory(precision, scale)
        except (ValueError, pa.ArrowInvalid) as exc:
            raise _ParseError(str(exc)) from None

    def list_type(self, name: str) -> pa.DataType:
        """Parse ``<T>`` or ``<item: T>`` after list / large_list."""
        self.expect("<")
        field_name = self.optional_field_name()
        value = self.parse_type()
        self.expect(">")
        field = pa.field(field_name or "item", value)
        return pa.list_(field) if name == "list" else pa.large_list(field)

    def map_type(self) -> pa.DataType:
        """Parse ``<KEY, VALUE>`` after map."""
        self.expect("<")
        key = self.parse_type()
        self.expect(",")
        item = self.parse_type()
        self.expect(">")
        return pa.map_(key, item)

    def struct_type(self) -> pa.DataType:
        """Parse ``<NAME: T, ...>`` after struct."""
        self.expect("<")
        fields = []
        while self.peek() != ">":
            if fields:
                self.expect(",")
            field_name = self.identifier()
            self.expect(":")
            fields.append(pa.field(field_name, self.parse_type()))
        self.expect(">")
        return pa.struct(fields)

    def optional_field_name(self) -> str | None:
        """Consume ``NAME:`` when it comes next (list<item: T>), else consume nothing."""
        start = self.pos
        if self.peek().isalpha() or self.peek() == "_":
            name = self.identifier()
            if self.peek() == ":":
                self.expect(":")
                return name
        self.pos = start
        return None

    # ---- tokens ----

    def skip_space(self) -> None:
        """Move past blanks."""
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        """Return the next non-blank character, or "" at the end."""
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def identifier(self) -> str:
        """Consume a name made of letters, digits and underscores."""
        self.skip_space()
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos].isalnum() or self.text[self.pos] == "_"
        ):
            self.pos += 1
        if start == self.pos:
            raise _ParseError(f"expected a name at offset {start}")
        return self.text[start : self.pos]

    def integer(self) -> int:
        """Consume a non-negative decimal integer."""
        word = self.identifier()
        if not word.isdigit():
            raise _ParseError(f"expected a number, got {word!r}")
        return int(word)

    def until(self, stop: str) -> str:
        """Consume everything up to (not including) ``stop``."""
        end = self.text.find(stop, self.pos)
        if end < 0:
            raise _ParseError(f"missing {stop!r}")
        value = self.text[self.pos : end]
        self.pos = end
        return value

    def expect(self, char: str) -> None:
        """Consume ``char`` or fail."""
        if self.peek() != char:
            found = self.peek() or "the end"
            raise _ParseError(f"expected {char!r} at offset {self.pos}, found {found!r}")
        self.pos += 1

    def expect_word(self, word: str) -> None:
        """Consume the identifier ``word`` or fail."""
        found = self.identifier()
        if found != word:
            raise _ParseError(f"expected {word!r}, found {found!r}")

    def expect_end(self) -> None:
        """Fail unless only blanks are left."""
        if self.peek():
            raise _ParseError(f"unexpected {self.text[self.pos :]!r} at offset {self.pos}")


# ---- layouts and conversions (the type contract, docs/types.md) ----


@lru_cache(maxsize=1024)  # asked for every argument of every batch; types are immutable
def plain_type(data_type: pa.DataType) -> pa.DataType:
    """Return ``data_type`` with every encoded or view layout replaced by its plain layout.

    Dictionary and run-end encoded types become their value type, ``string_view`` becomes
    ``string`` and ``binary_view`` becomes ``binary``, at any depth of lists, structs and maps:
    most pyarrow.compute kernels accept only the plain layouts.
    """
    if pa.types.is_dictionary(data_type):
        return plain_type(data_type.value_type)
    if pa.types.is_run_end_encoded(data_type):
        return plain_type(data_type.value_type)
    if pa.types.is_string_view(data_type):
        return pa.string()
    if pa.types.is_binary_view(data_type):
        return pa.binary()
    if pa.types.is_map(data_type):
        return pa.map_(plain_type(data_type.key_type), plain_type(data_type.item_type))
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        field = data_type.value_field
        plain = field.with_type(plain_type(field.type))
        return pa.list_(plain) if pa.types.is_list(data_type) else pa.large_list(plain)
    if pa.types.is_fixed_size_list(data_type):
        field = data_type.value_field
        return pa.list_(field.with_type(plain_type(field.type)), data_type.list_size)
    if pa.types.is_struct(data_type):
        return pa.struct([f.with_type(plain_type(f.type)) for f in data_type.fields])
    return data_type


def converts_exactly(source: pa.DataType, target: pa.DataType) -> bool:
    """Tell whether values of ``source`` may be converted to ``target`` for a UDF's result.

    Only conversions within one kind of value are allowed (integers to wider integers or to
    floats or decimals, floats to wider floats or to integers, strings between their layouts,
    timestamps between units and zones, ...). Whether each value survives is checked when
    the values are converted; this only rules out conversions that change what a value means
    (a number into a string, a bool into a number, a local time into an instant).
    """
    if source == target or pa.types.is_null(source):
        return True
    if pa.types.is_dictionary(source) or pa.types.is_run_end_encoded(source):
        return converts_exactly(source.value_type, target)
    for kind in _SAME_KIND:
        if kind(source) and kind(target):
            return True
    if pa.types.is_integer(source):
        return pa.types.is_floating(target) or pa.types.is_decimal(target)
    if pa.types.is_floating(source):
        # A narrower float rounds (or overflows to inf) without an error: not exact.
        wider = pa.types.is_floating(target) and target.bit_width >= source.bit_width
        return wider or pa.types.is_integer(target)
    if pa.types.is_timestamp(source) and pa.types.is_timestamp(target):
        # Between zones the instant stays; a zoned and a local time mean different things.
        return (source.tz is None) == (target.tz is None)
    return _nested_converts_exactly(source, target)


def _nested_converts_exactly(source: pa.DataType, target: pa.DataType) -> bool:
    """Apply :func:`converts_exactly` to the children of lists, maps and structs."""
    if _is_list_like(source) and _is_list_like(target):
        return converts_exactly(source.value_type, target.value_type)
    if pa.types.is_map(source) and pa.types.is_map(target):
        return converts_exactly(source.key_type, target.key_type) and converts_exactly(
            source.item_type, target.item_type
        )
    if pa.types.is_struct(source) and pa.types.is_struct(target):
        # Arrow matches struct fields by name.
        by_name = {f.name: f.type for f in source.fields}
        names = [f.name for f in target.fields]
        return sorted(by_name) == sorted(names) and all(
            converts_exactly(by_name[f.name], f.type) for f in target.fields
        )
    return False


def _is_list_like(data_type: pa.DataType) -> bool:
    """Tell whether ``data_type`` is a list, large list or fixed-size list."""
    return (
        pa.types.is_list(data_type)
        or pa.types.is_large_list(data_type)
        or pa.types.is_fixed_size_list(data_type)
    )


def _is_string_like(data_type: pa.DataType) -> bool:
    """Tell whether ``data_type`` is one of the layouts of UTF-8 strings."""
    return (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_string_view(data_type)
    )


def _is_binary_like(data_type: pa.DataType) -> bool:
    """Tell whether ``data_type`` is one of the layouts of variable-size bytes."""
    return (
        pa.types.is_binary(data_type)
        or pa.types.is_large_binary(data_type)
        or pa.types.is_binary_view(data_type)
    )


# Kinds whose members convert among themselves (each value checked on the way).
_SAME_KIND: tuple[Callable[[pa.DataType], bool], ...] = (
    pa.types.is_integer,
    pa.types.is_decimal,
    pa.types.is_boolean,
    _is_string_like,
    _is_binary_like,
    pa.types.is_date,
    pa.types.is_time,
    pa.types.is_duration,
)
