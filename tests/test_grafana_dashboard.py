"""deploy/grafana/flaskbox.json: every PromQL expression parses (promtool,
offline, as recording rules), names only series the image exports, and
every series the image exports has a panel."""

import json
import re
import shutil
import subprocess

from flaskbox.sidecars import metrics
from helpers import REPO

DASHBOARD = REPO / "deploy" / "grafana" / "flaskbox.json"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
# Grafana's own variables, as Grafana would fill them in.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$instance": ".+"}
NAME = re.compile(r"\bflaskbox_[a-z_]+\b")


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(found) >= 17
    return found


def filled(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, expr
    return expr


def exported(tmp_path) -> set[str]:
    """The series names flaskbox/sidecars/metrics.py writes (a histogram's three)."""
    text = metrics.Collector(tmp_path, 64, "sync").render()
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name}
    return names


def test_every_expression_parses(tmp_path):
    rules = {"groups": [{"name": "flaskbox-dashboard", "rules": [
        {"record": f"flaskbox_dashboard:panel_{index}", "expr": filled(expr)}
        for index, expr in enumerate(expressions())]}]}
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    checked = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(expressions())} rules found" in checked.stdout


def test_the_dashboard_names_only_what_the_image_exports(tmp_path):
    names = exported(tmp_path)
    assert {"flaskbox_http_requests_total", "flaskbox_http_request_duration_seconds_bucket"} <= names
    used = set()
    for expr in expressions():
        in_expr = set(NAME.findall(expr))
        assert in_expr, f"no flaskbox series in {expr}"
        assert in_expr <= names, f"{expr} names {in_expr - names}, which the image does not export"
        used |= in_expr
    families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in names}
    shown = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    assert families <= shown, f"exported but on no panel: {families - shown}"
