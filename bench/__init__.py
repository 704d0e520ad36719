"""netc's benchmark suite, run on demand: `python -m bench` or `make bench` (as root).

Never part of `make test`: timings depend on the machine and its load, so
they are reported (medians, p90s and netc/reference ratios, with the
machine described) and never asserted.  Suites:

* attach  -- ADD/DEL latency of a full pod attachment, netc-cni versus the
             stock plugins, with 0, 100 and 500 pods already attached
             (needs root: everything happens in throwaway namespaces);
* build   -- `netc build` / `netc check` on a generated 10,000-line file;
* startup -- CLI and plugin start-up, and netc-cni's import profile.

See docs/benchmarks.md for how to read and reproduce the figures.
"""
