"""The stages of a peer's round, in order, one module each (:mod:`bdfl.peer.engine`):

=========  ===================================================================
train      fit the local model (an attacker's client trains on its poisoned shard)
publish    encode the update (an attacker poisons it), serve it on the endpoint
submit     submit its hash; re-encode and submit again when a copier front-ran it
audit      committee members: fetch, hash-check, decode and judge the assigned updates
commit     salt the votes and keep them for the reveal (the driver sends the commitment)
reveal     the committed votes to reveal
aggregate  after the close: the approved updates to combine (the plan), then combine them
=========  ===================================================================
"""

from bdfl.peer.stages import aggregate, audit, commit, publish, reveal, submit, train

ORDER = ("train", "publish", "submit", "audit", "commit", "reveal", "aggregate")

__all__ = ["ORDER", "aggregate", "audit", "commit", "publish", "reveal", "submit", "train"]
