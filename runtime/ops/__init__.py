"""Handlers: how each kind of operation is ensured, removed and observed.

`base` holds what handlers and the executor share (the run of a call, the
handler protocol, refusals); one module per area carries out the kinds of
that area (links and addresses, sysctls, IPAM, NAT, host ports, traffic
shaping, records); `registry` maps each kind of the planner's vocabulary to
its handler.
"""
