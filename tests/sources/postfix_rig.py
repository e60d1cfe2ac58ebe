"""A real, private Postfix for tests, and the SMTP sink it relays to.

`PostfixRig` runs its own Postfix instance out of a temporary directory: its own
`main.cf` and `master.cf`, queue, data directory and `maillog_file`, a `syslog_name` of
its own, and an smtpd on 127.0.0.1 at a free port; it relays every message to
`relayhost = [127.0.0.1]:PORT`, where a `Sink` (aiosmtpd) accepts or refuses each
recipient as told. A system Postfix, running or not, is not touched: no file of
/etc/postfix is read or written (`postfix -c DIR`), port 25 is not bound, and the private
master's lock, pid file and sockets all live below the temporary directory. Mail goes in
over SMTP rather than through sendmail(1): postdrop is set-gid and would refuse a
configuration directory the system's main.cf does not list in
`alternate_config_directories`.

The retry timers are cut to a second (`queue_run_delay`, the backoff times and
`maximal_queue_lifetime`), so a recipient the sink defers is deferred, retried once and
expired (`status=expired, returned to sender`) within about two seconds.

Root is needed (Postfix's master starts as root and drops to `mail_owner`), and so is an
installed Postfix: `unavailable()` says why the rig cannot run, for `pytest.skip`.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Final, TypeVar

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

T = TypeVar("T")

SBIN_PATH: Final = "/usr/sbin:/usr/bin:/sbin:/bin"
RIG_HOSTNAME: Final = "rig.mailhooks.test"
RIG_SYSLOG_NAME: Final = "postfix-mailhooks-rig"
POLL_INTERVAL: Final = 0.02
DENIED: Final = "denied@example.com"
DENIED_REPLY: Final = "554 5.7.1 Denied by the rig's policy"


def postfix_command() -> str | None:
    return shutil.which("postfix", path=SBIN_PATH)


def unavailable() -> str | None:
    """Why a private Postfix cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root: Postfix's master(8) starts as root"
    if postfix_command() is None or shutil.which("postconf", path=SBIN_PATH) is None:
        return "Postfix is not installed (apt-get install postfix)"
    try:
        pwd.getpwnam("postfix")
        grp.getgrnam("postdrop")
    except KeyError:
        return "the postfix user or the postdrop group is missing"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(condition: Callable[[], T | None], timeout: float, what: str) -> T:
    """The first true value of `condition`, polled until the deadline; TimeoutError
    naming `what` after it."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(POLL_INTERVAL)


@dataclass(frozen=True)
class Received:
    """One message the sink accepted; `mail_from` is "" for the null sender."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes


class Sink:
    """An SMTP server on 127.0.0.1 that accepts every recipient except those in
    `replies`, which get their reply (`550 5.1.1 …`, `451 4.3.0 …`) to RCPT TO."""

    def __init__(self, replies: Mapping[str, str]) -> None:
        self.replies = dict(replies)
        self.port = free_port()
        self._received: list[Received] = []
        self._arrived = threading.Condition()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        reply = self.replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        mail_from = envelope.mail_from or ""
        mail_from = "" if mail_from == "<>" else mail_from  # aiosmtpd keeps the null sender's brackets
        with self._arrived:
            self._received.append(Received(mail_from, tuple(envelope.rcpt_tos), content))
            self._arrived.notify_all()
        return "250 2.0.0 Ok: kept"

    @property
    def received(self) -> list[Received]:
        with self._arrived:
            return list(self._received)

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float, what: str) -> Received:
        """The first message that satisfies `predicate`, waiting for it until the deadline."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for message in self._received:
                    if predicate(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{what}: not received within {timeout} s")
                self._arrived.wait(left)

    def __enter__(self) -> Sink:
        self._controller.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._controller.stop()


def _postfix_version() -> tuple[int, int]:
    result = subprocess.run(["postconf", "-d", "-h", "mail_version"], capture_output=True, text=True,
                            timeout=30, check=True, env={"PATH": SBIN_PATH})
    major, minor = result.stdout.strip().split(".")[:2]
    return int(major), int(minor)


class PostfixRig:
    """A private Postfix instance below `root`, relaying to 127.0.0.1:`relay_port`.
    Use it as a context manager: it is stopped on the way out, whatever happened."""

    def __init__(self, root: Path, relay_port: int) -> None:
        self.root = root
        self.relay_port = relay_port
        self.config_dir = root / "etc"
        self.queue_dir = root / "queue"
        self.data_dir = root / "data"
        self.maillog = root / "maillog"
        self.smtpd_port = free_port()
        command = postfix_command()
        if command is None:
            raise RuntimeError("Postfix is not installed")
        self.postfix = command

    def main_cf(self) -> str:
        major, minor = _postfix_version()
        level = f"{major}.{minor}" if (major, minor) >= (3, 6) else "2"
        return "\n".join((
            f"compatibility_level = {level}",
            # Everything of this instance's below the temporary directory.
            f"queue_directory = {self.queue_dir}",
            f"data_directory = {self.data_dir}",
            f"maillog_file = {self.maillog}",
            f"maillog_file_prefixes = {self.root}",
            f"syslog_name = {RIG_SYSLOG_NAME}",
            "mail_owner = postfix",
            "setgid_group = postdrop",
            f"myhostname = {RIG_HOSTNAME}",
            "mydomain = mailhooks.test",
            "myorigin = $myhostname",
            # No local delivery: everything goes to the sink.
            "mydestination =",
            "local_recipient_maps =",
            "alias_maps =",
            "alias_database =",
            "biff = no",
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            "mynetworks = 127.0.0.0/8",
            "smtpd_relay_restrictions = permit_mynetworks, reject",
            # One recipient smtpd refuses itself: a NOQUEUE reject in the log.
            f"smtpd_recipient_restrictions = check_recipient_access inline:{{{{{DENIED} = {DENIED_REPLY}}}}}",
            f"relayhost = [127.0.0.1]:{self.relay_port}",
            # No DNS: the relay host is an address, and names come from /etc/hosts.
            "smtp_dns_support_level = disabled",
            "smtp_host_lookup = native",
            "smtpd_peername_lookup = no",
            "smtp_tls_security_level = none",
            "smtpd_tls_security_level = none",
            # Retry, and give up, within seconds.
            "queue_run_delay = 1s",
            "minimal_backoff_time = 1s",
            "maximal_backoff_time = 1s",
            "maximal_queue_lifetime = 1s",
            "bounce_queue_lifetime = 1s",
            "",
        ))

    def master_cf(self) -> str:
        # No chroot (the queue directory is no chroot jail), and only the services a
        # relay needs; smtpd on 127.0.0.1 at a free port, never port 25.
        services = (
            f"127.0.0.1:{self.smtpd_port} inet n - n - - smtpd",
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "local unix - n n - - local",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        )
        return "\n".join((*services, ""))

    def _postfix(self, action: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.postfix, "-c", str(self.config_dir), action], capture_output=True,
                              text=True, timeout=timeout, check=False, env={"PATH": SBIN_PATH})

    def start(self) -> None:
        # Postfix's daemons, once they drop to mail_owner, must reach the queue directory.
        self.root.chmod(0o755)
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.queue_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        postfix_user = pwd.getpwnam("postfix")
        os.chown(self.data_dir, postfix_user.pw_uid, postfix_user.pw_gid)
        (self.config_dir / "main.cf").write_text(self.main_cf())
        (self.config_dir / "master.cf").write_text(self.master_cf())
        started = self._postfix("start")
        if started.returncode != 0:
            raise RuntimeError(f"postfix start failed ({started.returncode}): {started.stderr.strip()}\n"
                               f"{self.log_text()}")

    def master_pid(self) -> int | None:
        try:
            return int((self.queue_dir / "pid" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """`postfix stop`, waiting for the master to end; `postfix abort`, then SIGKILL to
        the master, when it does not."""
        pid = self.master_pid()
        self._postfix("stop")
        if pid is None or _gone(pid, 10):
            return
        self._postfix("abort")
        if _gone(pid, 5):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _gone(pid, 5)

    def __enter__(self) -> PostfixRig:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def send(self, sender: str, recipient: str, message_id: str, subject: str = "mailhooks rig") -> str:
        """Submits one message over SMTP; its queue id, from smtpd's reply to DATA."""
        message = EmailMessage()
        message["From"] = f"Rig <{sender}>"
        message["To"] = recipient
        message["Subject"] = subject
        message["Message-ID"] = message_id
        message.set_content("A test message of mailhooks' Postfix rig.\n")
        with smtplib.SMTP("127.0.0.1", self.smtpd_port, timeout=10) as client:
            client.ehlo("client.mailhooks.test")
            client.mail(sender)
            code, reply = client.rcpt(recipient)
            if code != 250:
                raise RuntimeError(f"Postfix refused {recipient}: {code} {reply!r}")
            code, reply = client.data(message.as_bytes())
        text = reply.decode("ascii", "replace")
        if code != 250 or "queued as " not in text:
            raise RuntimeError(f"Postfix did not queue the message: {code} {text}")
        return text.rsplit("queued as ", 1)[1].strip()

    def attempt(self, sender: str, recipient: str) -> tuple[int, str]:
        """MAIL FROM and RCPT TO only: smtpd's reply to the RCPT."""
        with smtplib.SMTP("127.0.0.1", self.smtpd_port, timeout=10) as client:
            client.ehlo("client.mailhooks.test")
            client.mail(sender)
            code, reply = client.rcpt(recipient)
        return code, reply.decode("ascii", "replace")

    def log_text(self) -> str:
        try:
            return self.maillog.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        """The maillog once `predicate` holds for its text, waiting until the deadline."""
        def ready() -> str | None:
            text = self.log_text()
            return text if predicate(text) else None
        try:
            return wait_until(ready, timeout, what)
        except TimeoutError as error:
            raise TimeoutError(f"{error}; the log so far:\n{self.log_text()}") from None


def _gone(pid: int, timeout: float) -> bool:
    """Whether process `pid` ends (or is a zombie: outside an init that reaps, Postfix's
    daemonized master is left as one) within `timeout` seconds."""
    def ended() -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        return stat.rsplit(")", 1)[-1].split()[0] == "Z"
    try:
        return wait_until(ended, timeout, f"Postfix's master {pid} ends")
    except TimeoutError:
        return False


@contextlib.contextmanager
def postfix_with_sink(root: Path, replies: Mapping[str, str]) -> Iterator[tuple[PostfixRig, Sink]]:
    """A sink refusing as told by `replies`, and a private Postfix relaying to it."""
    with Sink(replies) as sink, PostfixRig(root, sink.port) as rig:
        yield rig, sink
