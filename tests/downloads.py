"""Downloads as a client on a slow link makes them: curl, rate-limited, in
the background, over HTTP/1.1 or HTTP/2 (TLS), with how each ended. curl's
exit code tells a whole body (0) from a cut one (18: fewer bytes than the
Content-Length, or a chunked body with no last chunk; 92: an HTTP/2 stream
reset; 56: a connection reset), as any client can tell them."""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# curl's exit codes for a body that did not arrive whole.
CUT = {18: "partial file", 56: "failure receiving data", 92: "HTTP/2 stream error"}


@dataclass
class Download:
    url: str
    rate: str = "2M"          # curl --limit-rate: the client's link
    http2: bool = False       # over TLS, with ALPN h2 (a self-signed certificate)
    headers: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    status: int | None = None
    version: str = ""
    body: bytes = b""
    stderr: str = ""
    answer_headers: dict[str, str] = field(default_factory=dict)  # lower-case names

    def start(self) -> Download:
        self._file = tempfile.NamedTemporaryFile(prefix="flaskbox-download-", delete=False)
        self._file.close()
        self._head = Path(f"{self._file.name}.head")
        # -N: each piece written as it comes, so that received() tells progress.
        command = ["curl", "-sSN", "--limit-rate", self.rate, "-o", self._file.name, "-D", str(self._head),
                   "-w", "%{http_code} %{http_version}"]
        if self.http2:
            command += ["--http2", "-k"]
        for name, value in self.headers.items():
            command += ["-H", f"{name}: {value}"]
        self._process = subprocess.Popen([*command, self.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)
        return self

    def running(self) -> bool:
        return self._process.poll() is None

    def received(self) -> int:
        """Bytes written so far."""
        return Path(self._file.name).stat().st_size

    def wait(self, timeout: float = 180) -> Download:
        out, self.stderr = self._process.communicate(timeout=timeout)
        self.exit_code = self._process.returncode
        status, _, self.version = out.partition(" ")
        self.status = int(status) if status.isdigit() else None
        path = Path(self._file.name)
        self.body = path.read_bytes()
        path.unlink(missing_ok=True)
        if self._head.exists():
            for line in self._head.read_text(errors="replace").splitlines()[1:]:
                name, _, value = line.partition(":")
                if value:
                    self.answer_headers[name.strip().lower()] = value.strip()
            self._head.unlink()
        return self

    @property
    def whole(self) -> bool:
        return self.exit_code == 0

    @property
    def cut(self) -> bool:
        return self.exit_code in CUT

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    def __str__(self) -> str:
        return (f"{self.url}: curl exit {self.exit_code} ({CUT.get(self.exit_code, '')}), HTTP {self.status} "
                f"{self.version}, {len(self.body)} bytes {self.stderr.strip()}")
