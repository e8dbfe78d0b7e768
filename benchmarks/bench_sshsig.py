"""SSH signatures in-process against ssh-keygen: the figures behind pyproject's ``cryptography``.

    python benchmarks/bench_sshsig.py [N]

Makes throw-away keys with ``ssh-keygen`` in a temporary folder and prints the
median of N runs (default 1000; ssh-keygen's own runs are N/10, a process each)
of: signing a commit-sized payload in-process (:func:`gitclaim.sshsig.sign_with`)
and with ``ssh-keygen -Y sign``; verifying it in-process
(:func:`gitclaim.sshsig.verify`, the key already parsed, as in a hook that checks
a push of many commits) and with ``ssh-keygen -Y verify``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gitclaim import sshsig

PAYLOAD = (
    b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
    b"parent 2e50e08a7f84ef51c69be4f4a353e5fc67a0b1c2\n"
    b"author agent-1 <agent-1@gitclaim> 1700000000 +0000\n"
    b"committer agent-1 <agent-1@gitclaim> 1700000000 +0000\n\n"
    b"claim task-42\n"
)
KEYS = {"ed25519": ["-t", "ed25519"], "rsa-3072": ["-t", "rsa", "-b", "3072"], "ecdsa-p256": ["-t", "ecdsa"]}


def median_ms(f: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory(prefix="gitclaim-bench-sshsig-") as tmp:
        root = Path(tmp)
        (root / "payload").write_bytes(PAYLOAD)
        print(f"median of {n} (ssh-keygen: {max(n // 10, 1)}), ms per operation")
        print(f"{'key':12} {'sign':>8} {'ssh-keygen -Y sign':>19} {'verify':>8} {'ssh-keygen -Y verify':>21}")
        for name, args in KEYS.items():
            key = root / name
            subprocess.run(["ssh-keygen", "-q", *args, "-N", "", "-C", name, "-f", str(key)], check=True)
            loaded = sshsig.load_signing_key(key.read_bytes())
            signers = sshsig.AllowedSigners().with_added("agent-1", loaded.public_key)
            (root / "allowed").write_text(signers.text())
            armored = sshsig.sign_with(loaded, PAYLOAD)
            assert sshsig.verify(PAYLOAD, armored, signers) is not None
            (root / "payload.sig").write_text(armored)
            sign = median_ms(lambda: sshsig.sign_with(loaded, PAYLOAD), n)  # noqa: B023
            verify = median_ms(lambda: sshsig.verify(PAYLOAD, armored, signers), n)  # noqa: B023
            sign_cmd = ["ssh-keygen", "-Y", "sign", "-n", "git", "-f", str(key)]
            verify_cmd = ["ssh-keygen", "-Y", "verify", "-f", str(root / "allowed"), "-I", "agent-1", "-n", "git",
                          "-s", str(root / "payload.sig")]  # fmt: skip
            k = max(n // 10, 1)
            ext_sign = median_ms(lambda: subprocess.run(sign_cmd, input=PAYLOAD, capture_output=True, check=True), k)  # noqa: B023
            ext_verify = median_ms(
                lambda: subprocess.run(verify_cmd, input=PAYLOAD, capture_output=True, check=True),  # noqa: B023
                k,
            )
            print(f"{name:12} {sign:8.3f} {ext_sign:19.2f} {verify:8.3f} {ext_verify:21.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
