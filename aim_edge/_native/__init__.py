"""Private native extensions (C++ core in ``native/``). Use the facades in :mod:`aim_edge`."""
