"""VAR_FILE=/path gives VAR the file's contents: for every variable, a
flaskbox setting or one the app reads, the convention of the official
postgres and mysql images. A secret mounted as a file (a Docker Swarm
secret in /run/secrets, a Kubernetes Secret volume) then reaches the app as
the variable it already reads, and `docker inspect` shows only the path.

`python3 -m flaskbox file-vars` runs first of all in the entry point (as
root too, before stepping down, so a secret only root may read is read) and
prints, as records the shell reads as data (shell.py), an export of each VAR
and an unset of each VAR_FILE. It refuses (exit 2, naming the variable and the file, never the
contents) VAR and VAR_FILE both set, a file that cannot be read, and one
holding a NUL byte, which no environment variable can. Trailing newlines
are dropped, as the shell's $(< file) drops them: `echo secret | docker
secret create` leaves one.

The names converted are kept, space-separated, in FLASKBOX_FILE_VARS (the
step-down re-runs the entry point, which then finds nothing more to read):
the settings check (`resolve`) notes them for the log, and any message of
its that would quote such a value quotes its variable instead."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from .shell import EXPORT, UNSET, records

SUFFIX = "_FILE"
RECORD = "FLASKBOX_FILE_VARS"
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Variables whose *_FILE name is a path by another tool's convention, set by
# users or injected by platforms for that tool to read: left as they are.
PATH_VARIABLES = frozenset({
    "SSL_CERT_FILE",                # OpenSSL and Python's ssl: the CA bundle
    "PIP_CONFIG_FILE",              # pip (INSTALL_ON_START)
    "FLASK_ENV_FILE",               # flask --env-file
    "AWS_CONFIG_FILE",              # the AWS SDKs
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",  # injected by EKS (IAM roles for service accounts)
    "AZURE_FEDERATED_TOKEN_FILE",   # injected by AKS (workload identity)
    "NEW_RELIC_CONFIG_FILE",        # the New Relic agent
})
# flaskbox settings that name a file already: VAR_FILE would hand nginx the
# certificate itself where it expects its path.
PATH_SETTINGS = {"TLS_CERT": "the certificate", "TLS_KEY": "the private key"}


class FileVarError(ValueError):
    """A VAR_FILE that cannot give VAR a value; says how to fix it."""


# An app's own VAR_FILE variables that hold a path of its own (LOG_FILE,
# say): left alone, as the others above (the FILE_VARS_IGNORE setting).
IGNORE = "FILE_VARS_IGNORE"


def ignored(env: Mapping[str, str]) -> set[str]:
    return {name for name in re.split(r"[,\s]+", env.get(IGNORE, "")) if name}


def wanted(env: Mapping[str, str]) -> list[str]:
    """The VARs some VAR_FILE in env asks for, in name order."""
    names = []
    left_alone = PATH_VARIABLES | ignored(env)
    for key, path in env.items():
        if not key.endswith(SUFFIX) or key in left_alone or key.startswith("FLASKBOX_") or not path:
            continue
        name = key[:-len(SUFFIX)]
        if NAME.fullmatch(name):
            names.append(name)
    return sorted(names)


def read(name: str, env: Mapping[str, str]) -> bytes:
    """VAR's value from VAR_FILE's file, or FileVarError."""
    key, path = name + SUFFIX, env[name + SUFFIX]
    if name in PATH_SETTINGS:
        raise FileVarError(
            f"{key}='{path}': {name} is a path already; set {name}={path} so that nginx reads "
            f"{PATH_SETTINGS[name]} from that file, and unset {key}")
    if env.get(name):
        raise FileVarError(
            f"{name} and {key} are both set: {key} names a file whose contents become {name} (a "
            f"docker secret, a Kubernetes Secret volume); set one of them")
    try:
        with open(path, "rb") as file:
            value = file.read()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, PermissionError):
            reason += f" for uid {os.getuid()}, which starts the servers"
        raise FileVarError(
            f"{key}='{path}' cannot be read ({reason}): expected a readable file whose contents "
            f"become {name}, such as a docker secret (/run/secrets/NAME) or a file of a Kubernetes "
            "Secret volume") from None
    if b"\0" in value:
        raise FileVarError(f"{key}='{path}' holds a NUL byte, which no environment variable can; "
                           f"store {name}'s value as text (base64 for binary data)")
    return value.rstrip(b"\n")


def assignments(env: Mapping[str, str]) -> bytes:
    """The shell's records (shell.py) that give each VAR its file's contents
    and drop each VAR_FILE; FileVarError on the first that cannot."""
    names = wanted(env)
    if not names:
        return b""
    items: list[tuple] = []
    for name in names:
        items += [(EXPORT, name, read(name, env)), (UNSET, name + SUFFIX)]
    done = [*env.get(RECORD, "").split(), *names]
    items.append((EXPORT, RECORD, " ".join(dict.fromkeys(done))))
    return records(items)


def converted(env: Mapping[str, str] = os.environ) -> list[str]:
    """The variables this start read from files."""
    return env.get(RECORD, "").split()


def notes(env: Mapping[str, str] = os.environ) -> list[str]:
    return [f"{name}: read from the file that {name}{SUFFIX} names" for name in converted(env)]


def redact(message: str, env: Mapping[str, str] = os.environ) -> str:
    """message without the value of any variable read from a file, where
    a settings message would quote it: NAME='value' or NAME=value."""
    for name in converted(env):
        value = env.get(name)
        if value:
            hidden = f"(the contents of {name}{SUFFIX})"
            message = message.replace(f"'{value}'", hidden).replace(f"{name}={value}", f"{name}={hidden}")
    return message
