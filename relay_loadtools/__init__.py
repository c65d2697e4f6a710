"""Load tooling: the benchmark (``manage.py bench``), the soak test (``manage.py soak``) and
the simulator load check (``python -m relay_loadtools.loadcheck``), and what they share.

Shared: ``ports`` (free ports, waiting for a port or an HTTP answer), ``children`` (child
processes with a log each, stopped with SIGTERM then SIGKILL), ``stack`` (command lines of the
project's processes, runnable from an installed copy), ``procfs`` (/proc readings), ``audio``
(synthesized test audio), ``wsclient`` + ``stamps`` + ``loadgen`` + ``pool`` (the raw
WebSocket client and the multi-process load generator). Nothing here imports Django at import
time, so load generator processes start light.
"""
