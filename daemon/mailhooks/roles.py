"""Who may do what (SPEC §4a): the role of a request, from the peer's credentials on the
UNIX socket and from a bearer token on TCP.

Two roles: `send` (post events) and `admin` (everything else). On the UNIX socket the
kernel says who is calling (SO_PEERCRED): root, the daemon's own user and members of
`api.admin_groups` are admin; any other process that can connect (the socket's group)
may only send. On TCP every request but /healthz and /metrics carries a token; tokens
are compared in constant time and never logged.
"""

from __future__ import annotations

import grp
import hmac
import os
import pwd
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from mailhooks import log
from mailhooks.secrets import SecretError, SecretSources, resolve
from mailhooks.settings import Settings

# How long a user's groups are remembered: `usermod -aG` takes effect within a minute.
GROUPS_TTL: Final = 60.0
_CREDENTIALS: Final = struct.Struct("3i")  # struct ucred: pid, uid, gid

_log = log.get("mailhooks.roles")


class Role(IntEnum):
    ANYONE = 0
    SEND = 1
    ADMIN = 2


@dataclass(frozen=True)
class Peer:
    """Who is at the other end of a connection."""

    unix: bool
    pid: int | None = None
    uid: int | None = None
    gid: int | None = None


def peer_of(sock: socket.socket | None) -> Peer:
    if sock is None or sock.family != socket.AF_UNIX:
        return Peer(unix=False)
    try:
        pid, uid, gid = _CREDENTIALS.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size)
        )
    except OSError:
        return Peer(unix=True)
    return Peer(unix=True, pid=pid, uid=uid, gid=gid)


class Denied(Exception):
    """A request without the role it needs: `status` 401 (no valid token) or 403."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Authority:
    """Decides the role of a request; built at startup, tokens re-read on every reload."""

    def __init__(
        self, settings: Settings, *, own_uid: int | None = None,
        groups_of: Callable[[int, int], frozenset[int]] | None = None,
    ) -> None:
        self.settings = settings
        self.own_uid = os.geteuid() if own_uid is None else own_uid
        self.admin_groups = tuple(settings.api.admin_groups)
        self.admin_gids = frozenset(_gids(self.admin_groups))
        self._groups_of = groups_of or _user_groups
        self._groups: dict[tuple[int, int], tuple[float, frozenset[int]]] = {}
        self._tokens: tuple[tuple[bytes, Role], ...] = ()

    def load_tokens(self, sources: SecretSources) -> None:
        """Resolve the TCP listener's tokens. Raises ValueError (naming the reference, not
        the value) when one cannot be read, or when TCP is on without tokens."""
        http = self.settings.http
        if http is None:
            return
        tokens: list[tuple[bytes, Role]] = []
        for role, references in ((Role.ADMIN, http.tokens.admin), (Role.SEND, http.tokens.send)):
            for reference in references:
                try:
                    value = resolve(reference, sources)
                except SecretError as error:
                    raise ValueError(f"http.tokens: {error}") from None
                if len(value) < 16:
                    raise ValueError(f"http.tokens: {reference} is shorter than 16 characters")
                tokens.append((value.encode(), role))
        if not tokens:
            raise ValueError(
                f"http.listen is {http.listen} but http.tokens has no token: the TCP listener "
                "needs bearer tokens (http.tokens.send, http.tokens.admin)"
            )
        self._tokens = tuple(tokens)

    def role(self, peer: Peer, authorization: str | None) -> Role:
        """The role of a request from `peer`; raises Denied(401) for a TCP request whose
        token is missing or wrong."""
        if peer.unix:
            return self._unix_role(peer)
        return self._token_role(authorization)

    def check(self, peer: Peer, authorization: str | None, needed: Role) -> None:
        """Raise Denied unless the request may use a route that needs `needed`."""
        if needed is Role.ANYONE:
            return
        if self.role(peer, authorization) >= needed:
            return
        if peer.unix:
            groups = ", ".join(self.admin_groups) or "none configured"
            raise Denied(403, "this needs the admin role: run it as root, as the daemon's user, "
                              f"or as a member of api.admin_groups ({groups})")
        raise Denied(403, "this token may only send events; this needs an admin token")

    def _unix_role(self, peer: Peer) -> Role:
        if peer.uid is None:
            return Role.SEND
        if peer.uid in (0, self.own_uid):
            return Role.ADMIN
        if self.admin_gids and self._groups_cached(peer.uid, peer.gid or 0) & self.admin_gids:
            return Role.ADMIN
        return Role.SEND

    def _groups_cached(self, uid: int, gid: int) -> frozenset[int]:
        now = time.monotonic()
        cached = self._groups.get((uid, gid))
        if cached is None or now - cached[0] > GROUPS_TTL:
            cached = (now, self._groups_of(uid, gid))
            self._groups[(uid, gid)] = cached
        return cached[1]

    def _token_role(self, authorization: str | None) -> Role:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Denied(401, "this needs a bearer token: Authorization: Bearer TOKEN")
        given = token.strip().encode()
        found = Role.ANYONE
        for value, role in self._tokens:
            # Every token is compared, whatever matched, so the time taken says nothing.
            if hmac.compare_digest(given, value) and role > found:
                found = role
        if found is Role.ANYONE:
            raise Denied(401, "the bearer token is not valid")
        return found


def _gids(names: tuple[str, ...]) -> list[int]:
    found = []
    for name in names:
        try:
            found.append(grp.getgrnam(name).gr_gid)
        except KeyError:
            _log.warning("admin_group_unknown", group=name)
    return found


def _user_groups(uid: int, gid: int) -> frozenset[int]:
    """The user's primary group and every group that lists them (as `id` shows)."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return frozenset({gid})
    return frozenset({gid, *os.getgrouplist(name, gid)})
