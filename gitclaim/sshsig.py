"""SSH signatures (SSHSIG) in-process, and git's allowed_signers files.

What ``ssh-keygen -Y sign`` and ``ssh-keygen -Y verify`` do (OpenSSH's
PROTOCOL.sshsig), without a process per signature: git's ssh-signed commits
are SSHSIG in the namespace ``git``, hashed with sha512. Ed25519 and RSA
signatures come out byte-identical to ssh-keygen's (both are deterministic);
ECDSA ones are randomised, as ssh-keygen's are. The keys themselves are
:mod:`gitclaim.sshkeys`.

Pure: no git, no subprocess, no clock (a validity window is checked against a
time the caller passes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from .errors import BadInput, StoreCorrupt
from .sshkeys import KEY_TYPES, PublicKey, SigningKey, Wire, key_from_blob, load_signing_key, parse_public_key
from .sshkeys import ssh_string as _s
from .sshkeys import verify_raw as _verify_raw

__all__ = [
    "AllowedSigners",
    "Entry",
    "PublicKey",
    "SigningKey",
    "Verified",
    "load_signing_key",
    "parse_public_key",
    "sign",
    "sign_with",
    "signature_key",
    "verify",
]

BEGIN = "-----BEGIN SSH SIGNATURE-----"
END = "-----END SSH SIGNATURE-----"
_MAGIC = b"SSHSIG"
_LINE = 70  # ssh-keygen wraps the armoured base64 at 70 columns
_HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}  # what ssh-keygen -Y verify accepts


# --- signing -----------------------------------------------------------------------


def _signed_data(namespace: str, hashalg: str, payload: bytes) -> bytes:
    digest = _HASHES[hashalg](payload).digest()
    return _MAGIC + _s(namespace.encode("utf-8")) + _s(b"") + _s(hashalg.encode()) + _s(digest)


def armor(blob: bytes) -> str:
    """An SSHSIG blob armoured as ssh-keygen writes it (ending in a newline)."""
    b64 = base64.b64encode(blob).decode("ascii")
    return "\n".join([BEGIN, *(b64[i : i + _LINE] for i in range(0, len(b64), _LINE)), END]) + "\n"


def sign_with(key: SigningKey, payload: bytes, namespace: str = "git") -> str:
    """The armoured SSHSIG (sha512) of ``payload`` by a loaded key, as ``ssh-keygen -Y sign -n NAMESPACE``."""
    if not namespace:
        raise BadInput("an SSH signature needs a namespace (git signs in `git`)")
    sig = key.sign_raw(_signed_data(namespace, "sha512", payload))
    ns = namespace.encode("utf-8")
    header = _MAGIC + struct.pack(">I", 1) + _s(key.public_key.blob)
    return armor(header + _s(ns) + _s(b"") + _s(b"sha512") + _s(sig))


def sign(payload: bytes, private_key_pem_or_openssh: bytes, namespace: str = "git") -> str:
    """The armoured SSHSIG (sha512) of ``payload``, exactly as ``ssh-keygen -Y sign`` makes it, with an
    unencrypted OpenSSH or PEM private key. Raises :class:`BadInput` (a passphrase-protected key: use
    ssh-agent). To sign many payloads, load the key once (:func:`load_signing_key`, :func:`sign_with`)."""
    return sign_with(load_signing_key(private_key_pem_or_openssh), payload, namespace)


# --- reading and verifying -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Signature:
    key: PublicKey
    namespace: str
    hashalg: str
    sig: bytes


def _parse(armored: str) -> _Signature:
    """ValueError for anything that is not a well-formed SSHSIG by a key of a supported type."""
    text = armored.strip()
    if not text.startswith(BEGIN + "\n") or not text.endswith("\n" + END):
        raise ValueError("not an armoured SSH signature")
    try:
        blob = base64.b64decode("".join(text[len(BEGIN) : -len(END)].split()), validate=True)
    except binascii.Error:
        raise ValueError("the signature's base64 is malformed") from None
    if not blob.startswith(_MAGIC):
        raise ValueError("not an SSHSIG blob")
    w = Wire(blob[len(_MAGIC) :])
    version = w.u32()
    if version != 1:
        raise ValueError(f"SSHSIG version {version} (gitclaim reads version 1)")
    key_blob, namespace, _reserved, hashalg, sig = w.string(), w.text(), w.string(), w.text(), w.string()
    w.end()
    return _Signature(key_from_blob(key_blob), namespace, hashalg, sig)


def signature_key(armored: str) -> PublicKey:
    """The public key that made an armoured SSH signature (not checked: see :func:`verify`),
    so a caller can say "signed by a key not in the store (SHA256:...)".
    Raises :class:`BadInput` if it is not a well-formed SSH signature."""
    try:
        return _parse(armored).key
    except ValueError as e:
        raise BadInput(f"not an SSH signature gitclaim can read: {e}") from None


@dataclass(frozen=True, slots=True)
class Verified:
    """A good signature by ``key``, which ``principals`` may sign as."""

    principals: tuple[str, ...]
    key: PublicKey


def verify(
    payload: bytes, armored: str, signers: AllowedSigners, namespace: str = "git", *, at: datetime | None = None
) -> Verified | None:
    """Whether ``armored`` is a good signature of ``payload`` in ``namespace`` by a key of ``signers``
    (what ``ssh-keygen -Y verify`` checks); None for a bad, malformed or unlisted signature.

    ``at`` is the time an entry's ``valid-after``/``valid-before`` window is
    checked against (git checks the committer time); with ``at`` None an entry
    with a window vouches for nothing. Never raises for what the signature holds.
    """
    try:
        s = _parse(armored)
    except ValueError:
        return None
    if s.namespace != namespace or s.hashalg not in _HASHES:
        return None
    principals = signers.vouching(s.key, namespace, at)  # a dict look-up before any arithmetic
    if not principals or not _verify_raw(s.key, s.sig, _signed_data(s.namespace, s.hashalg, payload)):
        return None
    return Verified(principals, s.key)


# --- allowed_signers -----------------------------------------------------------------


@lru_cache(maxsize=1024)
def _pattern(pattern: str) -> re.Pattern[str]:
    # ssh's match_pattern: `*` any run, `?` any one character, all else literal
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


def match_list(name: str, patterns: Iterable[str]) -> bool:
    """ssh's match_pattern_list: some pattern matches and no negated (``!``) one does."""
    found = False
    for p in patterns:
        negated = p.startswith("!")
        if _pattern(p[1:] if negated else p).fullmatch(name):
            if negated:
                return False
            found = True
    return found


@dataclass(frozen=True, slots=True)
class _Rules:
    cert_authority: bool = False
    namespaces: tuple[str, ...] | None = None
    valid_after: datetime | None = None
    valid_before: datetime | None = None

    def allow(self, namespace: str, at: datetime | None) -> bool:
        if self.cert_authority:
            return False  # gitclaim verifies plain keys, not certificates
        if self.namespaces is not None and not match_list(namespace, self.namespaces):
            return False
        if self.valid_after is None and self.valid_before is None:
            return True
        if at is None:
            return False
        return (self.valid_after is None or at >= self.valid_after) and (
            self.valid_before is None or at <= self.valid_before
        )


_TIME = re.compile(r"(\d{4})(\d\d)(\d\d)(?:(\d\d)(\d\d)(\d\d)?)?([Zz]?)")


def _time(value: str) -> datetime:
    """``YYYYMMDD[Z]`` or ``YYYYMMDDHHMM[SS][Z]``: UTC with Z, else the system's time zone (as ssh-keygen)."""
    m = _TIME.fullmatch(value)
    if m is None:
        raise ValueError(f"{value!r} is not a time of the form YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z]")
    y, mo, d, h, mi, s = (int(x or 0) for x in m.groups()[:6])
    try:
        naive = datetime(y, mo, d, h, mi, s)
    except ValueError as e:
        raise ValueError(f"{value!r} is not a time: {e}") from None
    return naive.replace(tzinfo=UTC) if m[7] else naive.astimezone()


def _dequote(value: str) -> str:
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        raise ValueError(f"the value {value!r} needs double quotes")
    return value[1:-1].replace('\\"', '"')


def _rules(options: Iterable[str]) -> _Rules:
    """The meaning of an entry's options (ssh's sshsigopt_parse); ValueError names the fault."""
    found: dict[str, object] = {}
    for opt in options:
        name, eq, value = opt.partition("=")
        low = name.lower()
        if low == "cert-authority" and not eq:
            found["cert_authority"] = True
            continue
        if low not in ("namespaces", "valid-after", "valid-before") or not eq:
            known = "cert-authority, namespaces=, valid-after=, valid-before="
            raise ValueError(f"unknown option {opt!r} (known: {known})")
        field = low.replace("-", "_")
        if field in found:
            raise ValueError(f"more than one {low!r} option")
        text = _dequote(value)
        found[field] = tuple(text.split(",")) if low == "namespaces" else _time(text)
    rules = _Rules(**found)  # type: ignore[arg-type]
    if rules.valid_after and rules.valid_before and rules.valid_before <= rules.valid_after:
        raise ValueError("valid-before is not after valid-after")
    return rules


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of an allowed_signers file: who may sign with ``key``, and the options as written
    (``namespaces="git"``, ``valid-after="20240101Z"``, ``cert-authority``)."""

    principals: tuple[str, ...]
    key: PublicKey
    options: tuple[str, ...] = ()


def _field(s: str) -> tuple[str, str]:
    """The first field of ``s`` (ssh's strdelimw: a double-quoted one may hold spaces) and the rest."""
    if s.startswith('"'):
        end = s.find('"', 1)
        if end < 0:
            raise ValueError("a quote is not closed")
        return s[1:end], s[end + 1 :].lstrip(" \t")
    parts = s.split(None, 1)
    return parts[0], parts[1] if len(parts) > 1 else ""


def _options(s: str) -> tuple[list[str], str]:
    """The comma-separated options at the start of ``s`` (commas and spaces inside quotes kept), and the rest."""
    out, cur, quoted, i = [], "", False, 0
    while i < len(s) and (quoted or s[i] not in " \t"):
        c = s[i]
        if c == "\\" and quoted and s[i + 1 : i + 2] == '"':
            cur, i = cur + '\\"', i + 2
            continue
        if c == '"':
            quoted = not quoted
        if c == "," and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    if quoted:
        raise ValueError("a quote in the options is not closed")
    out.append(cur)
    if "" in out:
        raise ValueError("an empty option")
    return out, s[i:].lstrip(" \t")


def _parse_line(line: str) -> Entry | None:
    s = line.strip(" \t\r\n")
    if not s or s.startswith("#"):
        return None
    principals, rest = _field(s)
    if not rest:
        raise ValueError("a line is `principals [options] keytype base64 [comment]`")
    first = rest.split(None, 1)[0]
    options: list[str] = []
    if first not in KEY_TYPES:
        if "=" not in first and not first.lower().startswith("cert-authority"):
            types = ", ".join(KEY_TYPES)
            raise ValueError(f"{first[:40]!r} is neither a key type gitclaim verifies ({types}) nor options")
        options, rest = _options(rest)
        _rules(options)
    names = tuple(principals.split(","))
    if "" in names:
        raise ValueError(f"an empty principal in {principals!r}")
    try:
        key = parse_public_key(rest)
    except BadInput as e:
        raise ValueError(e.message) from None
    return Entry(names, key, tuple(options))


def _check_name(name: str) -> None:
    if not name or any(c in name for c in ' \t\r\n,"*?') or name[0] in "!#":
        raise BadInput(
            f"{name!r} cannot be an allowed signer: a principal is non-empty, has no spaces, commas, quotes or"
            " wildcards, and starts with neither ! nor #",
            principal=name,
        )


class AllowedSigners:
    """git's ``gpg.ssh.allowedSignersFile`` (``man ssh-keygen``, ALLOWED SIGNERS), immutable.

    A ``cert-authority`` line is read (ssh-keygen may share the file) but vouches
    for no signature: gitclaim verifies signatures by plain keys, not certificates.
    """

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self.entries = tuple(entries)
        self._ruled: list[tuple[Entry, _Rules]] = []
        self._by_key: dict[PublicKey, list[tuple[Entry, _Rules]]] = {}
        for e in self.entries:
            try:
                pair = (e, _rules(e.options))
            except ValueError as err:
                raise BadInput(f"bad options for {','.join(e.principals)}: {err}") from None
            self._ruled.append(pair)
            self._by_key.setdefault(e.key, []).append(pair)

    @classmethod
    def parse(cls, text: str, *, path: str = "allowed_signers") -> AllowedSigners:
        """Raises :class:`StoreCorrupt` naming the line of a malformed one."""
        entries = []
        for n, line in enumerate(text.split("\n"), 1):
            try:
                entry = _parse_line(line)
            except ValueError as e:
                raise StoreCorrupt(f"{path} line {n}: {e}", path=path, line=n) from None
            if entry is not None:
                entries.append(entry)
        return cls(entries)

    def keys_for(self, principal: str) -> list[PublicKey]:
        """The keys that may sign as ``principal`` (the principals fields are ssh patterns)."""
        found = [e.key for e, r in self._ruled if not r.cert_authority and match_list(principal, e.principals)]
        return list(dict.fromkeys(found))

    def principals_for(self, key: PublicKey) -> list[str]:
        """The principals (as written) of the entries of ``key``, whatever their options."""
        found = [p for e, r in self._by_key.get(key, ()) if not r.cert_authority for p in e.principals]
        return list(dict.fromkeys(found))

    def vouching(self, key: PublicKey, namespace: str, at: datetime | None) -> tuple[str, ...]:
        """The principals whose entries let ``key`` sign in ``namespace`` at ``at`` (see :func:`verify`)."""
        found = [p for e, r in self._by_key.get(key, ()) if r.allow(namespace, at) for p in e.principals]
        return tuple(dict.fromkeys(found))

    def with_added(self, name: str, key: PublicKey) -> AllowedSigners:
        """These signers and ``name`` with ``key`` (no options). Raises :class:`BadInput` for a bad name."""
        _check_name(name)
        if any(e.principals == (name,) and not e.options for e, _ in self._by_key.get(key, ())):
            return self
        return AllowedSigners([*self.entries, Entry((name,), key)])

    def without(self, name: str) -> AllowedSigners:
        """These signers with the principal ``name`` taken out of every entry (exactly that name)."""
        kept = []
        for e in self.entries:
            rest = tuple(p for p in e.principals if p != name)
            if rest:
                kept.append(e if rest == e.principals else Entry(rest, e.key, e.options))
        return AllowedSigners(kept)

    def text(self) -> str:
        """The file: sorted, one line per principal (an entry with a negated ``!`` principal stays whole,
        since splitting it would change its meaning), comments and blank lines dropped."""
        lines: dict[str, str] = {}
        for e in self.entries:
            opts = f" {','.join(e.options)}" if e.options else ""
            groups = [e.principals] if any(p.startswith("!") for p in e.principals) else [(p,) for p in e.principals]
            for g in groups:
                who = ",".join(g)
                if any(c in who for c in " \t") or who[0] in '#"':
                    who = f'"{who}"'
                line = f"{who}{opts} {e.key.line()}"
                lines.setdefault(line, f"{line} {e.key.comment}".rstrip())
        return "".join(lines[k] + "\n" for k in sorted(lines))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AllowedSigners) and self.text() == other.text()

    def __hash__(self) -> int:
        return hash(self.text())

    def __repr__(self) -> str:
        return f"AllowedSigners({len(self.entries)} entries)"
