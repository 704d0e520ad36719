"""The planner: what the kernel must look like for one pod, as ordered operations.

Pure like the rest of the compiler, and imported by the runtime plugin on
every CNI call, so it must not import lark, click or anything heavy.
"""
