"""The archive (PACS) as the source of truth: this workstation's image store is a bounded cache of it.

`cache` keeps the store under a size limit by evicting the least recently opened studies (never a pinned
one: a study being read or reported); `fetch` brings back, on open, the files of a study that the shared
database lists but this workstation does not hold, from the configured PACS, first image first.
"""
