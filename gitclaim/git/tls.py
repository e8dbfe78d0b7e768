"""Trusting private certificate authorities for https remotes."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pygit2

if TYPE_CHECKING:
    pass
from ..errors import (
    BadInput,
)
from .failures import error_text

_TRUSTED: set[str] = set()  # CA files and folders already given to libgit2 (one TLS context a process)


def trust_ca_bundle(url: str, config: list[tuple[str, str]]) -> None:
    """Trust private CAs for https, in addition to the system's: every file named
    by GITCLAIM_CA_BUNDLE, GIT_SSL_CAINFO or git's ``http.sslCAInfo``
    (``http.<url>.sslCAInfo`` first), and every folder of hashed certificates
    named by GIT_SSL_CAPATH or ``http.sslCAPath``.

    git lets the environment override the config; gitclaim adds them all up,
    since trusting one more CA someone configured on purpose cannot break a
    connection that would otherwise work. Raises BadInput if a named bundle
    does not exist or holds no certificate, rather than failing later with a
    vaguer certificate error.
    """
    from . import credentials as gitcred

    named = [
        (os.environ.get("GITCLAIM_CA_BUNDLE"), False),
        (os.environ.get("GIT_SSL_CAINFO"), False),
        (gitcred.http_setting(url, config, "sslCAInfo"), False),
        (os.environ.get("GIT_SSL_CAPATH"), True),
        (gitcred.http_setting(url, config, "sslCAPath"), True),
    ]
    for raw, is_dir in named:
        if not raw:
            continue
        path = os.path.expanduser(raw)
        if path in _TRUSTED:
            continue
        if not (os.path.isdir(path) if is_dir else os.path.isfile(path)):
            raise BadInput(
                f"the CA {'folder' if is_dir else 'bundle'} {path} does not exist",
                hint="point GITCLAIM_CA_BUNDLE (or git's http.sslCAInfo) at a PEM file with the CA's certificate",
                path=path,
            )
        try:
            if is_dir:
                pygit2.settings.set_ssl_cert_locations(None, path)
            else:
                pygit2.settings.set_ssl_cert_locations(path, None)
        except pygit2.GitError as e:
            raise BadInput(
                f"cannot load the CA certificates in {path}: {error_text(e)}",
                hint="the file must hold PEM certificates (-----BEGIN CERTIFICATE-----)",
                path=path,
            ) from None
        _TRUSTED.add(path)
