"""Chain access: compile, launch devnets, deploy, send transactions, read contracts.

Nothing outside this package imports web3 or talks JSON-RPC.
"""
