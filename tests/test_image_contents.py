"""What ships: no setuid or setgid programs, no secrets, no compilers."""

import json

from helpers import docker


def in_image(containers, script: str) -> str:
    result = containers.run_once("bash", "-c", script, docker_args=("--user", "0"))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_no_setuid_or_setgid_programs(containers):
    # CIS Docker Benchmark 4.8. Debian's base alone has a dozen (su, passwd,
    # mount, unix_chkpwd, ...).
    found = in_image(containers, "find / -xdev -perm /6000 -type f")
    assert found == "", found


def test_no_passwords_keys_or_credentials(containers, image):
    # Every account is locked: no password hash in /etc/shadow.
    shadow = in_image(containers, "cut -d: -f1,2 /etc/shadow")
    unlocked = [line for line in shadow.splitlines() if line.split(":")[1] not in ("*", "!", "!*", "")]
    assert unlocked == [], unlocked
    # No private keys or credential files anywhere in the image.
    keys = in_image(containers, "grep -rlI -- '-----BEGIN [A-Z ]*PRIVATE KEY-----' "
                                "/etc /opt /app /root /home /usr /var 2>/dev/null; true")
    assert keys == "", keys
    names = (".netrc", ".git-credentials", ".pypirc", "pip.conf", ".env", "id_rsa*", "id_ed25519*")
    creds = in_image(containers, "find / -xdev \\( " + " -o ".join(f"-name '{n}'" for n in names) + " \\)")
    assert creds == "", creds
    # Build arguments such as a private package index stay in the build stage.
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    assert "PIP_INDEX_URL" not in history and "PIP_TRUSTED_HOST" not in history
    env = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]["Env"]
    assert not [e for e in env if any(word in e.upper() for word in ("PASSWORD", "SECRET", "TOKEN"))], env


def test_no_compilers_and_the_servers_come_from_the_venv(containers):
    found = in_image(containers, "for c in gcc cc c++ g++ clang make as ld; do command -v $c; done; "
                                 "command -v python uwsgi flask")
    # flask: flaskbox's wrapper first (docker exec acts on the served app), then the venv's.
    expected = ["/opt/venv/bin/python", "/opt/venv/bin/uwsgi", "/usr/local/lib/flaskbox/bin/flask"]
    assert found.split() == expected, found


def test_no_package_lists_or_apt_caches(containers):
    # ~80 MB that only apt-get needs; images built FROM this one run
    # `apt-get update` first anyway.
    found = in_image(containers, "find /var/lib/apt/lists /var/cache/apt -type f -name '*.bin' "
                                 "-o -type f -name '*_Packages*' -o -type f -name '*.deb'")
    assert found == "", found
