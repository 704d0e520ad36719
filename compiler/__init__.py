"""netc's compiler: `.netdsl` source to IR, conflists and operation plans.

The stages are pure functions (no I/O, clock or environment): syntax -> lower
(templates, schema, checks) -> IR -> emitters and the planner.  The runtime
plugin imports only `compiler.ir`, `compiler.ir_codec` and `compiler.planner`,
which must stay free of lark and click.
"""
