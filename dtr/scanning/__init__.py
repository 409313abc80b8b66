"""Security scanning: layers indexed once, images matched against a vulnerability database.

The pieces, one module each:

- ``types``: the plain records every part shares (``Distribution``, ``Package``, ``LayerIndex``,
  ``Advisory``, ``Finding``) and ``LayerError`` (a layer that cannot be indexed, and why).
- ``layer``: reads one layer blob as a stream (gzip, zstd or plain tar: ``decompress``,
  ``tarformat``), never to disk, and hands the files the indexers want to them; ``index_layer``
  gives the layer's ``LayerIndex``.
- ``indexers``: one indexer per kind of installed-software record (os-release, dpkg, apk, rpm,
  Python, npm, gems, Java archives, Go and Rust binaries), all on the ``indexers.base.Indexer``
  interface and listed once in ``indexers.all_indexers``.
- ``versions``: version order per ecosystem (dpkg, apk, rpm, PEP 440, semver, Maven, RubyGems, Go).
- ``image``: an image's software built from stored layer rows (layers in order, whiteouts, newest
  package database per path, language packages owned by OS packages reported as the OS package).
- ``feeds``: the vulnerability feeds (OSV, Debian security tracker, Alpine secdb, NVD) parsed into
  ``Advisory`` records; ``vulndb`` updates the database from them (``vulnimport``: one transaction
  per feed version) and reads it; ``bundles``: signed offline bundles of it (export, verify, import).
- ``matcher``: an image's packages against the advisories, per ecosystem, with fix states and severity.
- ``models``: the tables.
- The write side: ``service`` (queueing scans, scan on push, after a database update), ``scan`` (one
  image's scan job: its layers indexed under a per-layer lock), ``findings`` (composing, matching
  and storing an image's findings), ``rematch`` (images a database change touches, from their
  rows), ``locking``; ``jobs``: the ``scan``, ``update_vuln_db`` and ``rematch`` job actions.
- The read side: ``results`` (queries and counts, the override rule), ``access`` (the caller and
  its repository access), ``reports`` (results and summaries), ``exports`` (CSV, SBOMs: ``sbom``,
  ``purl``, ``licenses``), ``overrides``, ``control`` (queueing scans and updates, the database's
  status, offline uploads); ``shapes`` and ``views``: ``/api/v0/imagescan``; ``cli``: ``dtr scan``
  and ``dtr vulndb``.
"""
