"""The accepted forms of settings: each form is a function that takes the
text of a variable and returns its typed value (an int, a byte count, a
list), or raises ValueError when the text is outside the form; the table
names one per setting, with the words that describe it to a user."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from typing import Any

from ..layout import MAX_LINE_LIMIT
from ..userapp import discover, writable

Form = Callable[[str], Any]


class SettingError(Exception):
    """A setting outside its form; the message says which and how to fix it."""


SIZE = re.compile(r"([0-9]{1,12})([kKmMgG]?)")
SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def size_bytes(value: str) -> int:
    """An nginx size (512k, 10m, 1g, 4096) in bytes."""
    match = SIZE.fullmatch(value)
    if match is None:
        raise ValueError(value)
    number, unit = match.groups()
    return int(number) * SIZE_UNITS[unit.lower()]


def line_size(value: str) -> int:
    """MAX_LINE_SIZE in bytes: 1k to layout.MAX_LINE_LIMIT, which uWSGI's
    64 KB block for a request's variables bounds."""
    size = size_bytes(value)
    if not 1024 <= size <= MAX_LINE_LIMIT:
        raise ValueError(value)
    return size


def whole(low: int, high: int) -> Form:
    """A whole number from low to high."""
    def parse(value: str) -> int:
        if not (value.isdigit() and len(value) <= 7 and low <= int(value) <= high):
            raise ValueError(value)
        return int(value)
    return parse


def one_of(*choices: str) -> Form:
    def parse(value: str) -> str:
        if value not in choices:
            raise ValueError(value)
        return value
    return parse


def flag(value: str) -> bool:
    """`1` or `0`."""
    return one_of("0", "1")(value) == "1"


def matches(pattern: str, empty: bool = False) -> Form:
    """Text matching pattern (or empty, when empty is allowed)."""
    regex = re.compile(pattern)
    def parse(value: str) -> str:
        if not (empty and value == "") and regex.fullmatch(value) is None:
            raise ValueError(value)
        return value
    return parse


def words(value: str) -> list[str]:
    """Items of a list setting, separated by commas and/or spaces."""
    return [item for item in re.split(r"[,\s]+", value) if item]


def file_var_names(value: str) -> list[str]:
    """Names of variables that end in _FILE (FILE_VARS_IGNORE)."""
    names = words(value)
    if not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*_FILE", name) for name in names):
        raise ValueError(value)
    return names


def network_list(value: str) -> list[str]:
    """IP networks or addresses, as networks (10.0.0.0/8, 192.0.2.1/32)."""
    return [str(ipaddress.ip_network(item, strict=False)) for item in words(value)]


# A host name as nginx's `map ... { hostnames; }` matches it: a name, or a
# leading "*." (subdomains only) or "." (the name and its subdomains); or an
# IP address literal. DNS's limits hold: 63 characters a label, 253 a name
# (nginx.conf's map_hash_bucket_size has room for that and no more).
HOST_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
HOST_PATTERN = re.compile(rf"^(\*\.|\.)?(?=[^*]{{1,253}}$){HOST_LABEL}(\.{HOST_LABEL})*$")


def host_list(value: str) -> list[str]:
    """Host names, lower case."""
    hosts = words(value.lower())
    for item in hosts:
        if not HOST_PATTERN.match(item):
            ipaddress.ip_address(item.strip("[]"))  # ValueError when it is neither
    return hosts


URL_PATH = r"(/[A-Za-z0-9._~-]+)+"
url_path = matches(URL_PATH, empty=True)
absolute_path = matches(URL_PATH)


def app_module(value: str) -> str:
    discover.parse(value)  # ValueError when it is not one of Flask's forms
    return value


def writable_paths(value: str) -> list[str]:
    if not writable.valid(value):
        raise ValueError(value)
    return value.split()


def readable_file(value: str) -> str:
    """The path of a file this user can read, or empty for none."""
    if value and not (os.path.isfile(value) and os.access(value, os.R_OK)):
        raise ValueError(value)
    return value


def ip_address(value: str) -> str:
    """An IPv4 or IPv6 address, as written (0.0.0.0, 127.0.0.1, ::1)."""
    return str(ipaddress.ip_address(value))


def strip_slash(value: str) -> str:
    """"/static/" means /static; a lone "/" is left for the check to refuse."""
    return value.rstrip("/") if len(value) > 1 else value
