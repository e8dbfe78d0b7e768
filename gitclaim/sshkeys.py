"""OpenSSH keys in-process: public key lines, private key files, raw SSH signatures.

The key half of :mod:`gitclaim.sshsig` (which owns the SSHSIG format and
allowed_signers): the SSH wire format, public keys as OpenSSH writes them,
unencrypted private keys loaded once, and the SSH signature of some bytes
(``string sigtype, string sig``) made or checked with ``cryptography``.
Ed25519, RSA (rsa-sha2-512/256) and ECDSA on nistp256/384/521.

Pure: no git, no subprocess, no clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from .errors import BadInput

_CURVES: dict[str, tuple[str, type[hashes.HashAlgorithm], str]] = {
    "ecdsa-sha2-nistp256": ("nistp256", hashes.SHA256, "secp256r1"),
    "ecdsa-sha2-nistp384": ("nistp384", hashes.SHA384, "secp384r1"),
    "ecdsa-sha2-nistp521": ("nistp521", hashes.SHA512, "secp521r1"),
}
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", *_CURVES)
_RSA_SIGS: dict[str, type[hashes.HashAlgorithm]] = {"rsa-sha2-512": hashes.SHA512, "rsa-sha2-256": hashes.SHA256}
_RSA_MIN_BITS = 1024  # OpenSSH refuses smaller RSA keys
_OPENSSH_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----"
_OPENSSH_END = "-----END OPENSSH PRIVATE KEY-----"
_OPENSSH_MAGIC = b"openssh-key-v1\0"
_ENCRYPTED = "the private key is protected by a passphrase, which gitclaim cannot ask for"
_USE_AGENT = "load it into ssh-agent (`ssh-add KEYFILE`) and sign through the agent"

_Private = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


# --- the SSH wire format -----------------------------------------------------------


class Wire:
    """Reads SSH wire data (RFC 4251); every fault is a ValueError."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise ValueError("truncated data")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def string(self) -> bytes:
        return self.take(self.u32())

    def text(self) -> str:
        return self.string().decode("utf-8")

    def mpint(self) -> int:
        raw = self.string()
        if raw and raw[0] & 0x80:
            raise ValueError("a negative number where a positive one belongs")
        return int.from_bytes(raw, "big")

    def end(self) -> None:
        if self.at != len(self.data):
            raise ValueError("trailing data")


def ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _mpint(n: int) -> bytes:
    # one byte more than the bits need: a leading zero keeps a set top bit positive
    return ssh_string(n.to_bytes((n.bit_length() + 8) // 8, "big") if n else b"")


# --- public keys ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class PublicKey:
    """An OpenSSH public key: its type and wire blob. The comment takes no part in equality."""

    keytype: str
    blob: bytes
    comment: str = field(default="", compare=False)

    def line(self) -> str:
        """``TYPE BASE64``, as in an authorized_keys or allowed_signers line."""
        return f"{self.keytype} {base64.b64encode(self.blob).decode('ascii')}"

    def fingerprint(self) -> str:
        """``SHA256:...``, as ``ssh-keygen -lf`` prints it."""
        digest = base64.b64encode(hashlib.sha256(self.blob).digest()).decode("ascii")
        return "SHA256:" + digest.rstrip("=")

    def __repr__(self) -> str:
        return f"PublicKey({self.keytype} {self.fingerprint()}{' ' + self.comment if self.comment else ''})"


def key_from_blob(blob: bytes, comment: str = "") -> PublicKey:
    """The key a wire blob holds; ValueError if it is malformed or of a type gitclaim does not verify."""
    w = Wire(blob)
    keytype = w.string().decode("ascii", "replace")
    if keytype == "ssh-ed25519":
        if len(w.string()) != 32:
            raise ValueError("an Ed25519 key is 32 bytes")
    elif keytype == "ssh-rsa":
        w.mpint()
        bits = w.mpint().bit_length()
        if bits < _RSA_MIN_BITS:
            raise ValueError(f"an RSA key of {bits} bits is too small (OpenSSH needs {_RSA_MIN_BITS})")
    elif keytype in _CURVES:
        if w.string() != _CURVES[keytype][0].encode():
            raise ValueError(f"the curve of the key does not match its type {keytype}")
        w.string()
    else:
        raise ValueError(f"gitclaim verifies {', '.join(KEY_TYPES)} keys, not {keytype!r}")
    w.end()
    key = PublicKey(keytype, blob, comment)
    try:
        _loaded(key)  # a point off the curve, a bad exponent
    except (ValueError, UnsupportedAlgorithm) as e:
        raise ValueError(f"not a valid {keytype} key ({e})") from None
    return key


def parse_public_key(text: str) -> PublicKey:
    """The key of an OpenSSH public key line ``TYPE BASE64 [COMMENT]`` (ssh-ed25519, ssh-rsa,
    ecdsa-sha2-nistp256/384/521). Raises :class:`BadInput` for anything else."""
    parts = text.strip().split(None, 2)
    shown = text.strip()[:60]
    if len(parts) < 2:
        raise BadInput(f"not an OpenSSH public key (`TYPE BASE64 [COMMENT]`): {shown!r}")
    keytype, b64 = parts[0], parts[1]
    if keytype not in KEY_TYPES:
        raise BadInput(f"gitclaim verifies {', '.join(KEY_TYPES)} keys, not {keytype!r}: {shown!r}", keytype=keytype)
    try:
        key = key_from_blob(base64.b64decode(b64, validate=True), parts[2].strip() if len(parts) > 2 else "")
    except (binascii.Error, ValueError) as e:
        raise BadInput(f"not a valid OpenSSH public key ({e}): {shown!r}") from None
    if key.keytype != keytype:
        raise BadInput(f"the line says {keytype} but holds a {key.keytype} key: {shown!r}")
    return key


@lru_cache(maxsize=4096)
def _loaded(key: PublicKey) -> object:
    """cryptography's object for ``key``, parsed once: the costly part of a verification."""
    return serialization.load_ssh_public_key(key.line().encode("ascii"))


def verify_raw(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` (``string sigtype, string sig``) is ``key``'s signature of ``data``.
    RSA with SHA-1 (``ssh-rsa``) is refused, as ssh-keygen refuses it for SSHSIG."""
    try:
        w = Wire(signature)
        sigtype, sig = w.text(), w.string()
        w.end()
        public = _loaded(key)
        if isinstance(public, ed25519.Ed25519PublicKey) and sigtype == "ssh-ed25519":
            public.verify(sig, data)
        elif isinstance(public, rsa.RSAPublicKey) and sigtype in _RSA_SIGS:
            size = (public.key_size + 7) // 8  # OpenSSH accepts a signature with its leading zeros cut
            public.verify(sig.rjust(size, b"\0"), data, padding.PKCS1v15(), _RSA_SIGS[sigtype]())
        elif isinstance(public, ec.EllipticCurvePublicKey) and sigtype == key.keytype:
            inner = Wire(sig)
            r, s = inner.mpint(), inner.mpint()
            inner.end()
            public.verify(encode_dss_signature(r, s), data, ec.ECDSA(_CURVES[key.keytype][1]()))
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


# --- private keys ----------------------------------------------------------------------


def _openssh_body(data: bytes) -> Wire:
    text = data.decode("ascii", "replace").strip()
    body = text.removeprefix(_OPENSSH_BEGIN).removesuffix(_OPENSSH_END)
    try:
        raw = base64.b64decode("".join(body.split()), validate=True)
    except binascii.Error:
        raise ValueError("bad base64") from None
    if not raw.startswith(_OPENSSH_MAGIC):
        raise ValueError("not an openssh-key-v1 file")
    return Wire(raw[len(_OPENSSH_MAGIC) :])


def looks_private(data: bytes) -> bool:
    """Whether a file holds a private key (OpenSSH or PEM), by its armour."""
    return b"-----BEGIN " in data and b"PRIVATE KEY-----" in data


def private_key_encrypted(data: bytes) -> bool:
    """Whether a private key file (OpenSSH or PEM) is protected by a passphrase."""
    if _OPENSSH_BEGIN.encode() in data:
        try:
            return _openssh_body(data).string() != b"none"  # the cipher
        except ValueError:
            return False
    return b"ENCRYPTED" in data.split(b"\n\n", 1)[0]  # "BEGIN ENCRYPTED PRIVATE KEY", "Proc-Type: 4,ENCRYPTED"


def openssh_public_half(data: bytes) -> PublicKey | None:
    """The public key an OpenSSH private key file carries in the clear (also when it is
    encrypted), or None (a PEM file, a malformed file, a key type gitclaim does not verify)."""
    try:
        w = _openssh_body(data)
        w.string(), w.string(), w.string()  # cipher, kdf, kdf options
        if w.u32() != 1:
            return None
        return key_from_blob(w.string())
    except ValueError:
        return None


class SigningKey:
    """An unencrypted private key, loaded once: signs in-process."""

    def __init__(self, key: _Private, public_key: PublicKey) -> None:
        self._key = key
        self.public_key = public_key

    def sign_raw(self, data: bytes) -> bytes:
        """The SSH signature of ``data``: ``string sigtype, string sig`` (RSA: rsa-sha2-512)."""
        k, keytype = self._key, self.public_key.keytype
        if isinstance(k, ed25519.Ed25519PrivateKey):
            return ssh_string(b"ssh-ed25519") + ssh_string(k.sign(data))
        if isinstance(k, rsa.RSAPrivateKey):
            return ssh_string(b"rsa-sha2-512") + ssh_string(k.sign(data, padding.PKCS1v15(), hashes.SHA512()))
        r, s = decode_dss_signature(k.sign(data, ec.ECDSA(_CURVES[keytype][1]())))
        return ssh_string(keytype.encode()) + ssh_string(_mpint(r) + _mpint(s))


def load_signing_key(data: bytes) -> SigningKey:
    """An unencrypted OpenSSH or PEM private key (Ed25519, RSA, ECDSA nistp256/384/521).

    Raises :class:`BadInput`: not a private key, a key of another type, or one
    protected by a passphrase (which gitclaim cannot ask for: ssh-agent can hold it).
    """
    if private_key_encrypted(data):
        raise BadInput(_ENCRYPTED, hint=_USE_AGENT)
    key: object
    try:
        if _OPENSSH_BEGIN.encode() in data:
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's word for "encrypted", for a form the test above missed
        raise BadInput(_ENCRYPTED, hint=_USE_AGENT) from None
    except (ValueError, UnsupportedAlgorithm) as e:
        raise BadInput(f"not a private key gitclaim can read: {e}") from None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name not in {c[2] for c in _CURVES.values()}:
        raise BadInput(f"gitclaim signs with ECDSA on nistp256/384/521, not {key.curve.name}")
    if not isinstance(key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise BadInput(f"gitclaim signs with {', '.join(KEY_TYPES)} keys, not {type(key).__name__}")
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return SigningKey(key, parse_public_key(line.decode("ascii")))
