"""Keystone's shape (issue 79; bench --apps): a token is a password check
(bcrypt-like: PBKDF2 in OpenSSL, outside Python's lock, some 0.2 s of this
host's CPU) and a signed payload (Fernet-like: an HMAC); its other calls
(a project, the catalog, a token validated) are a few ms of Python each:
the caller's role assignments worked out, dicts built and JSON-encoded,
behind the policy engine, which each process builds on its first such
call (oslo.policy's rules table: some 1.5 s of Python)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
import time

from per_process import SETUP_SCALE, PerProcess, calibrated

TOKEN_CPU, POLICY_CPU = 0.2, 1.5 * SETUP_SCALE
SALT, SECRET = b"flaskbox-bench-keystone", b"fernet-key-of-the-bench"
PASSWORD = b"correct horse battery staple"


def _pbkdf2(rounds: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", PASSWORD, SALT, rounds)


TOKEN_ROUNDS = calibrated(_pbkdf2, 50_000, TOKEN_CPU, "TOKEN_ROUNDS")
PASSWORD_HASH = _pbkdf2(TOKEN_ROUNDS)
ACTIONS = [f"identity:{verb}_{thing}" for thing in ("project", "user", "role", "domain", "group", "region",
                                                     "service", "endpoint", "credential", "policy", "limit")
           for verb in ("get", "list", "create", "update", "delete")]
ACTIONS += ["identity:validate_token", "identity:get_auth_catalog"]


def parse(rule: str):
    """oslo.policy's grammar, small: `a or b`, `a and b`, `not a`,
    parentheses, `kind:match` checks; a tree of tuples."""
    tokens = rule.replace("(", " ( ").replace(")", " ) ").split()

    def expression(at: int, stop: str | None):
        terms, conjunction = [], []
        while at < len(tokens) and tokens[at] != stop:
            token = tokens[at]
            if token == "(":
                node, at = expression(at + 1, ")")
            elif token in ("and", "or"):
                if token == "or":
                    terms.append(("and", *conjunction))
                    conjunction = []
                at += 1
                continue
            elif token == "not":
                at += 1
                kind, _, match = tokens[at].partition(":")
                node = ("not", ("check", kind, match))
            else:
                kind, _, match = token.partition(":")
                node = ("check", kind, match)
            conjunction.append(node)
            at += 1
        terms.append(("and", *conjunction))
        return ("or", *terms), at

    return expression(0, None)[0]


def check(node, target: dict, creds: dict) -> bool:
    kind = node[0]
    if kind == "or":
        return any(check(child, target, creds) for child in node[1:])
    if kind == "and":
        return all(check(child, target, creds) for child in node[1:])
    if kind == "not":
        return not check(node[1], target, creds)
    if node[1] == "role":
        return node[2] in creds["roles"]
    if node[1] == "rule":
        return True
    value = node[2] % target if "%(" in node[2] else node[2]
    return str(creds.get(node[1])) == value


def _rules(passes: int) -> dict:
    """The rules table: every action's rule parsed, checked against sample
    credentials as oslo.policy's registration does, `passes` times over
    (each pass replaces the last: the table stays one table)."""
    table: dict = {}
    creds = {"roles": ["reader", "member"], "user_id": "u1", "project_id": "p1", "domain_id": "default"}
    for number in range(passes):
        for index, action in enumerate(ACTIONS):
            rule = (f"role:admin or (role:member and project_id:%(target.project_id)s) or "
                    f"(role:reader and system_scope:all and not role:suspended{index % 7}) or "
                    f"user_id:%(target.user_id)s or rule:owner{number % 3}")
            table[action] = parse(rule)
            check(table[action], {"target.project_id": "p1", "target.user_id": "u2"}, creds)
    return table


POLICY_PASSES = calibrated(_rules, 50, POLICY_CPU, "POLICY_PASSES")
POLICY = PerProcess(lambda: _rules(POLICY_PASSES))
CATALOG_SERVICES = [("compute", "nova"), ("network", "neutron"), ("image", "glance"), ("volumev3", "cinder"),
                    ("identity", "keystone"), ("object-store", "swift"), ("orchestration", "heat"),
                    ("placement", "placement"), ("load-balancer", "octavia"), ("dns", "designate"),
                    ("key-manager", "barbican"), ("metric", "gnocchi")]
REGIONS = ("RegionOne", "RegionTwo", "RegionThree")
ASSIGNMENTS = 600  # a user's role assignments over its domain's projects: some 2 ms of Python a call


def issue_token(body: dict) -> str | None:
    """The password checked (OpenSSL, outside the lock), then a signed
    token; None for a wrong password."""
    password = str(body.get("password", "")).encode()
    if not hmac.compare_digest(hashlib.pbkdf2_hmac("sha256", password, SALT, TOKEN_ROUNDS), PASSWORD_HASH):
        return None
    payload = json.dumps({"user": body.get("user", "demo"), "project": "p1", "methods": ["password"],
                          "issued": int(time.time()), "nonce": os.urandom(6).hex()}).encode()
    mac = hmac.new(SECRET, payload, "sha256").digest()
    return base64.urlsafe_b64encode(payload + mac).decode()


def read_token(token: str | None) -> dict | None:
    """The token's payload, if its HMAC holds; else None."""
    try:
        raw = base64.urlsafe_b64decode((token or "").encode())
    except ValueError:
        return None
    payload, mac = raw[:-32], raw[-32:]
    if not payload or not hmac.compare_digest(hmac.new(SECRET, payload, "sha256").digest(), mac):
        return None
    return json.loads(payload)


def assignments(token: dict) -> list[dict]:
    """The caller's effective role assignments, as Keystone works them out
    for every call: direct and inherited ones over the projects of its
    domain, expanded through implied roles, filtered to the token's
    project."""
    draw = random.Random(token["user"])
    implied = {"admin": ("member",), "member": ("reader",), "reader": ()}
    found = []
    for number in range(ASSIGNMENTS):
        role = draw.choice(("admin", "member", "reader", "reader"))
        scope = {"project": {"id": f"p{number % 40}", "domain": {"id": "default"}}}
        for name in (role, *implied[role]):
            found.append({"role": {"id": hashlib.md5(name.encode()).hexdigest(), "name": name},
                          "user": {"id": token["user"]}, "scope": scope,
                          "links": {"assignment": f"/v3/projects/p{number % 40}/users/{token['user']}"}})
    return [a for a in found if a["scope"]["project"]["id"] == token["project"]]


def enforce(action: str, token: dict) -> bool:
    """The action's rule, from the process's policy engine, against the
    caller's roles."""
    roles = sorted({a["role"]["name"] for a in assignments(token)})
    creds = {"roles": roles, "user_id": token["user"], "project_id": token["project"]}
    return check(POLICY.get()[action], {"target.project_id": token["project"], "target.user_id": "u2"}, creds)


def catalog_entries() -> list[dict]:
    """Every service with its endpoints, in each region and interface."""
    return [{"id": f"svc-{name}", "type": kind, "name": name,
             "endpoints": [{"id": hashlib.md5(f"{kind}{region}{face}".encode()).hexdigest(),
                            "interface": face, "region": region, "region_id": region,
                            "url": f"https://{name}.{region.lower()}.example:8774/v2.1"}
                           for region in REGIONS for face in ("public", "internal", "admin")]}
            for kind, name in CATALOG_SERVICES]


def catalog(token: dict) -> str:
    return json.dumps({"catalog": catalog_entries(), "links": {"self": "https://keystone.example/v3/auth/catalog"}})


def project(token: dict) -> str:
    draw = random.Random(token["project"])
    tags = [f"tag-{draw.randrange(1000)}" for _ in range(40)]
    limits = [{"resource_name": name, "service_id": f"svc-{name}", "region_id": region,
               "resource_limit": draw.randrange(1, 1000), "description": f"{name} in {region}"}
              for name, _ in CATALOG_SERVICES * 4 for region in REGIONS]
    return json.dumps({"project": {"id": token["project"], "name": "demo", "domain_id": "default",
                                   "tags": tags, "enabled": True, "options": {}, "limits": limits}})


def validation(subject: dict) -> str:
    """The subject token's body, with its roles and the catalog."""
    roles = [a["role"] for a in assignments(subject)]
    body = {"token": {**subject, "roles": roles, "expires_at": subject["issued"] + 3600,
                      "catalog": catalog_entries()}}
    return json.dumps(body)
