"""``kubectl hal9``, the plugin: a live view of migrations, the engine's controls, and dry runs.

``main`` parses the command line, ``commands`` does each command, ``client`` is the one door to the
API server (pykube-ng), and ``summary`` and ``views`` are pure: what an object means, and how it looks.
"""
