"""The operations, each a small module over the one primitive of :class:`~gitclaim.api.Store`.

``Store`` keeps the configuration, the transport and the one mutation path
(``Store._mutate``: the compare-and-swap loop of :mod:`gitclaim.cas`). Each
module here is a recipe built on it, the way kazoo builds its lock and
counter on a versioned set: :mod:`.bootstrap` (init), :mod:`.add`,
:mod:`.claim` (claim, next, takeover), :mod:`.verbs` (the lifecycle verbs,
one spec each), :mod:`.edit`, :mod:`.leases` (heartbeat, stale, reap),
:mod:`.queries` (the read views) and :mod:`.history` (reading the audit
trail back). ``Store``'s public methods only hand their arguments on.
"""
