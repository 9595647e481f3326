"""Benchmarks of celery-parselog: what capture costs per record, per task, in memory and
in leftovers, and whether concurrent runs keep their records apart.

Run everything with one command from the repository's root::

    .venv/bin/python -m benchmarks run            # full sizes, about a quarter of an hour
    .venv/bin/python -m benchmarks run --quick    # smaller sizes, a few minutes
    .venv/bin/python -m benchmarks run --smoke    # tiny sizes, to check that it all works

Results go to ``benchmarks/results/latest.json`` (every repetition) and
``latest.md`` (the table), or into ``--out DIR``. Timings are only ever compared as
ratios or differences of variants measured side by side in the same run, because the
machines this runs on are shared and noisy; absolute seconds stay in the JSON.
"""
