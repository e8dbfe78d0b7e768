"""gitclaim.sshsig and gitclaim.sshkeys against real ssh-keygen: signatures each side makes and
the other accepts, public keys and fingerprints, allowed_signers files ssh-keygen reads."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gitclaim import sshsig
from gitclaim.errors import BadInput, StoreCorrupt
from gitclaim.sshkeys import parse_public_key

from .keys import DETERMINISTIC, KEY_KINDS, allowed_file, keygen, keygen_sign, keygen_verify, public

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


# --- sshsig against ssh-keygen ---------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KEY_KINDS))
def test_each_side_accepts_what_the_other_signs(kind: str, tmp_path: Path) -> None:
    key = keygen(tmp_path / "id", kind)
    payload = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nmessage\n"
    allowed = allowed_file(tmp_path, public(key))
    signers = sshsig.AllowedSigners.parse(allowed.read_text())

    ours = sshsig.sign(payload, key.read_bytes())
    assert keygen_verify(allowed, "agent@test", ours, payload, tmp_path)
    theirs = keygen_sign(key, payload)
    got = sshsig.verify(payload, theirs, signers)
    assert got is not None and got.principals == ("agent@test",) and got.key == public(key)
    if kind in DETERMINISTIC:
        assert ours == theirs  # byte for byte, armour included
    assert sshsig.verify(payload, ours, signers) == got


@pytest.mark.parametrize("kind", sorted(KEY_KINDS))
def test_tampered_payloads_and_other_keys_fail(kind: str, tmp_path: Path) -> None:
    key, other = keygen(tmp_path / "id", kind), keygen(tmp_path / "other", kind)
    payload = b"the commit\n"
    signers = sshsig.AllowedSigners().with_added("agent@test", public(key))
    good = keygen_sign(key, payload)
    assert sshsig.verify(payload, good, signers) is not None
    assert sshsig.verify(payload + b" ", good, signers) is None
    assert sshsig.verify(payload, good, signers, namespace="file") is None
    assert sshsig.verify(payload, keygen_sign(key, payload, namespace="file"), signers) is None
    by_other = keygen_sign(other, payload)
    assert sshsig.verify(payload, by_other, signers) is None
    assert sshsig.signature_key(by_other) == public(other)  # "signed by a key not in the store (SHA256:...)"
    lines = good.splitlines()
    flipped = lines[3][:-3] + ("A" if lines[3][-3] != "A" else "B") + lines[3][-2:]  # inside the signature bytes
    assert sshsig.verify(payload, "\n".join([*lines[:3], flipped, *lines[4:]]), signers) is None
    for junk in ("", "not a signature", good.replace("SSH SIGNATURE", "PGP SIGNATURE")):
        assert sshsig.verify(payload, junk, signers) is None
        with pytest.raises(BadInput, match="not an SSH signature"):
            sshsig.signature_key(junk)


@pytest.mark.parametrize("kind", sorted(KEY_KINDS))
def test_public_keys_and_fingerprints_as_ssh_keygen_has_them(kind: str, tmp_path: Path) -> None:
    key = keygen(tmp_path / "id", kind, comment="alice laptop")
    k = public(key)
    listed = subprocess.run(["ssh-keygen", "-lf", f"{key}.pub"], capture_output=True, text=True, check=True).stdout
    assert listed.split()[1] == k.fingerprint()
    assert k.keytype == Path(f"{key}.pub").read_text().split()[0]
    assert k.comment == "alice laptop"
    assert k.line() == " ".join(Path(f"{key}.pub").read_text().split()[:2])
    assert parse_public_key(k.line()) == k  # the comment takes no part in equality
    assert sshsig.load_signing_key(key.read_bytes()).public_key == k


def test_what_is_not_a_supported_public_key_is_bad_input(tmp_path: Path) -> None:
    ed = public(keygen(tmp_path / "id"))
    b64 = ed.line().split()[1]
    for text, said in [
        ("", "not an OpenSSH public key"),
        ("ssh-ed25519", "not an OpenSSH public key"),
        (f"ssh-dss {b64}", "not 'ssh-dss'"),
        (f"sk-ssh-ed25519@openssh.com {b64}", "not 'sk-ssh-ed25519@openssh.com'"),
        ("ssh-ed25519 !!!notbase64", "not a valid OpenSSH public key"),
        (f"ssh-ed25519 {b64[:-8]}", "not a valid OpenSSH public key"),
        (f"ssh-rsa {b64}", "holds a ssh-ed25519 key"),
        (f"cert-authority ssh-ed25519 {b64}", "not 'cert-authority'"),
    ]:
        with pytest.raises(BadInput, match=said):
            parse_public_key(text)


def test_a_passphrase_protected_key_cannot_sign_in_process(tmp_path: Path) -> None:
    key = keygen(tmp_path / "id", passphrase="correct horse")
    with pytest.raises(BadInput, match="passphrase") as e:
        sshsig.sign(b"x", key.read_bytes())
    assert "ssh-agent" in e.value.hint
    pem = tmp_path / "pem"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "correct horse", "-f", str(pem)],
                   check=True, capture_output=True)  # fmt: skip
    with pytest.raises(BadInput, match="passphrase"):
        sshsig.sign(b"x", pem.read_bytes())
    with pytest.raises(BadInput, match="not a private key"):
        sshsig.sign(b"x", Path(f"{key}.pub").read_bytes())


def test_a_pem_key_signs_as_ssh_keygen_does(tmp_path: Path) -> None:
    pem = tmp_path / "pem"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f", str(pem)],
                   check=True, capture_output=True)  # fmt: skip
    assert pem.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert sshsig.sign(b"payload", pem.read_bytes()) == keygen_sign(pem, b"payload")


# --- allowed_signers ---------------------------------------------------------------------


def test_allowed_signers_round_trip_and_queries(tmp_path: Path) -> None:
    a, b, c = (public(keygen(tmp_path / n)) for n in ("a", "b", "c"))
    text = (
        "# the team's signers\n"
        "\n"
        f"alice@x,bob@x {a.line()} alice's laptop\n"
        f'  carol@x namespaces="git,file",valid-after="20240101Z" {b.line()}\n'
        f'"dave x" {c.line()}\n'
        f"*@ops,!mallory@ops {c.line()}\n"
        f"ca@x cert-authority {b.line()}\n"
    )
    signers = sshsig.AllowedSigners.parse(text)
    assert [e.principals for e in signers.entries] == [
        ("alice@x", "bob@x"), ("carol@x",), ("dave x",), ("*@ops", "!mallory@ops"), ("ca@x",)
    ]  # fmt: skip
    assert signers.entries[1].options == ('namespaces="git,file"', 'valid-after="20240101Z"')
    assert signers.keys_for("alice@x") == [a] and signers.keys_for("bob@x") == [a]
    assert signers.keys_for("carol@x") == [b]
    assert signers.keys_for("eve@ops") == [c] and signers.keys_for("mallory@ops") == []
    assert signers.keys_for("ca@x") == []  # a CA key vouches for nobody here
    assert signers.principals_for(a) == ["alice@x", "bob@x"]
    assert signers.principals_for(c) == ["dave x", "*@ops", "!mallory@ops"]

    out = signers.text()
    assert out == "".join(sorted(out.splitlines(keepends=True)))
    assert f"alice@x {a.line()} alice's laptop\n" in out and f"bob@x {a.line()} alice's laptop\n" in out
    assert f"*@ops,!mallory@ops {c.line()}\n" in out  # kept whole: split, it would let mallory in
    assert f'"dave x" {c.line()}\n' in out
    again = sshsig.AllowedSigners.parse(out)
    assert again.text() == out and again == signers

    added = signers.with_added("erin@x", a)
    assert added.keys_for("erin@x") == [a] and added.with_added("erin@x", a) is added
    removed = added.without("alice@x")
    assert removed.keys_for("alice@x") == [] and removed.keys_for("bob@x") == [a]
    assert removed.without("bob@x").without("erin@x").principals_for(a) == []
    for bad in ("", "two words", "a,b", "!neg", "#hash", "wild*", 'q"uote'):
        with pytest.raises(BadInput, match="cannot be an allowed signer"):
            signers.with_added(bad, a)


def test_ssh_keygen_reads_the_file_gitclaim_writes(tmp_path: Path) -> None:
    a, b = keygen(tmp_path / "a"), keygen(tmp_path / "b", "rsa")
    signers = sshsig.AllowedSigners().with_added("alice@x", public(a)).with_added("bob@x", public(b))
    allowed = tmp_path / "allowed"
    allowed.write_text(signers.text())
    sig = keygen_sign(b, b"data")
    assert keygen_verify(allowed, "bob@x", sig, b"data", tmp_path)
    assert not keygen_verify(allowed, "alice@x", sig, b"data", tmp_path)
    (tmp_path / "s.sig").write_text(sig)
    found = subprocess.run(["ssh-keygen", "-Y", "find-principals", "-f", str(allowed), "-s", str(tmp_path / "s.sig")],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert found.stdout.split() == signers.principals_for(public(b)) == ["bob@x"]


def test_namespaces_and_validity_windows_limit_a_key(tmp_path: Path) -> None:
    key = keygen(tmp_path / "id")
    k = public(key)
    sig = keygen_sign(key, b"p")
    only_files = sshsig.AllowedSigners.parse(f'alice@x namespaces="file,release-*" {k.line()}\n')
    assert sshsig.verify(b"p", sig, only_files) is None
    assert sshsig.verify(b"p", keygen_sign(key, b"p", "release-1"), only_files, namespace="release-1") is not None
    not_git = sshsig.AllowedSigners.parse(f'alice@x namespaces="*,!git" {k.line()}\n')
    assert sshsig.verify(b"p", sig, not_git) is None
    window = sshsig.AllowedSigners.parse(f'alice@x valid-after="20240101Z",valid-before="202406301200Z" {k.line()}\n')
    assert sshsig.verify(b"p", sig, window) is None  # no time to check the window against: fail closed
    assert sshsig.verify(b"p", sig, window, at=WHEN) is not None
    assert sshsig.verify(b"p", sig, window, at=datetime(2023, 12, 31, tzinfo=UTC)) is None
    assert sshsig.verify(b"p", sig, window, at=datetime(2024, 6, 30, 12, 0, 1, tzinfo=UTC)) is None
    local = sshsig.AllowedSigners.parse(f'alice@x valid-after="20240101" {k.line()}\n')  # the system's time zone
    assert sshsig.verify(b"p", sig, local, at=datetime(2024, 1, 3, tzinfo=UTC)) is not None
    assert sshsig.verify(b"p", sig, local, at=datetime(2023, 12, 30, tzinfo=UTC)) is None
    # a second entry without limits vouches where the first does not
    both = sshsig.AllowedSigners.parse(f'alice@x namespaces="file" {k.line()}\nalice@work {k.line()}\n')
    got = sshsig.verify(b"p", sig, both)
    assert got is not None and got.principals == ("alice@work",)


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("alice@x", "principals \\[options\\] keytype base64"),
        ("alice@x ssh-ed25519", "not an OpenSSH public key"),
        ("alice@x ssh-ed25519 AAAA", "not a valid OpenSSH public key"),
        ("alice@x nonsense KEY", "neither a key type"),
        ("alice@x ssh-dss KEY", "neither a key type"),
        ("alice@x namespaces=git KEY", "needs double quotes"),
        ('alice@x namespaces="git KEY', "quote in the options is not closed"),
        ('alice@x namespaces="git",namespaces="file" KEY', "more than one 'namespaces'"),
        ('alice@x valid-after="yesterday" KEY', "not a time"),
        ('alice@x valid-after="20241301" KEY', "not a time"),
        ('alice@x valid-after="20240201",valid-before="20240101" KEY', "valid-before is not after valid-after"),
        ('alice@x no-touch-required="x" KEY', "unknown option"),
        ('alice@x namespaces="git",, KEY', "empty option"),
        ('alice@x namespaces="git"', "missing|not an OpenSSH public key"),
        ('"alice KEY', "quote is not closed"),
        ("alice@x,,bob@x KEY", "empty principal"),
    ],
)
def test_a_malformed_line_is_named_by_its_number(line: str, said: str, tmp_path: Path) -> None:
    key = public(keygen(tmp_path / "id")).line()
    text = f"# signers\n{line.replace('KEY', key)}\n"
    with pytest.raises(StoreCorrupt, match=f"allowed_signers line 2: .*({said})") as e:
        sshsig.AllowedSigners.parse(text)
    assert e.value.details["line"] == 2
