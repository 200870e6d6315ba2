"""The probe cache: the registries' answers kept between renders (`--cache`).

- location.py: the `--cache` value (where answers are kept);
- backends.py: opening a SQLite file or a Redis client safely;
- format.py: requests-cache's storage format, the one module that knows it;
- read.py: a render's answers, read without the HTTP stack;
- write.py: a render's answers, stored through requests-cache off the critical path;
- admin.py: `rewriter cache info` and `rewriter cache clear`.

`--cache` values:

- an absolute path (`~` is expanded): SQLite in WAL mode with a busy timeout, so renders
  running at once on one file (Argo CD runs many) wait for each other instead of failing;
  the file is created 0600 in a 0700 directory, never through a symbolic link. A file
  another user owns, or a symbolic link, is neither read nor written; one of this
  user's own writable by group or others is not read, and started anew (what it holds
  could be anyone's). A *relative* path is an error: Argo CD
  and kustomize run the renderer in a temporary directory, so a relative cache would
  silently be a new, empty cache on every render.
- `redis://...` / `rediss://...`: one cache shared by several repo-server replicas.
- `none`: no cache.

Importing this package imports nothing: each module is imported by what needs it.
"""
