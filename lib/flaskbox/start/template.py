"""Filling the config templates: the real config files with upper-case
${...} placeholders. Only names the record knows are replaced, so nginx's
own $variables (and ${lower_case} ones) pass through, and a misspelt
placeholder fails the start instead of reaching nginx."""

from __future__ import annotations

import re
from pathlib import Path

CONF_DIR = Path("/etc/flaskbox")
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


class TemplateError(Exception):
    pass


def fill(template: str, values: dict[str, str], source: str = "template") -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise TemplateError(f"{source} uses ${{{name}}}, which no setting defines")
        return values[name]

    return PLACEHOLDER.sub(value, template)
