"""The benchmark suite: ``python -m bench [SECTION[.PART] ...]`` (see ``bench/__main__.py``);
``make bench`` runs the target sections, ``make bench-smoke`` every part with tiny sizes."""
