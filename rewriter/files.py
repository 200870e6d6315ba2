"""The files options name: read or appended to only when they are regular files.

`--license`, `--application`, `--config`, `--license-id-file`,
`--local-registry-password-file` and `--ca-bundle` are read, `--log-file` is appended
to. Each is opened without blocking (a FIFO never waits for its other end) and checked
on the opened descriptor, not the name, so nothing can swap the file between the check
and the use. docs/security.md, "Files rewriter reads and writes".
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TextIO

from rewriter.errors import RewriterError

MIB = 1 << 20
# What an option names may not be read unbounded: a KOTS License, an Application, a
# config, a license ID or password file are all far below this.
FILE_CAP = MIB


class UnfitFile(RewriterError):
    """A file an option names that exists but must not be read: not a regular file, or
    over the size cap. Always an error, even where a missing file is not (yet) one."""


def read_file(path: Path | str, option: str, what: str, cap: int = FILE_CAP) -> bytes:
    """The bytes of a file an option names: a regular file of at most `cap` bytes.

    Opened without blocking (a FIFO never waits for a writer) and checked on the opened
    descriptor, not the name (nothing can swap the file between the check and the read).
    A FIFO, a device, a directory, a socket or the standard input is an error naming the
    option: `--license-id-file /dev/stdin` would otherwise swallow the manifests.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise RewriterError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        _refuse_unfit(fd, f"{option} {path}", 0, "the standard input, not a file of its own")
        chunks: list[bytes] = []
        size = 0
        try:
            while size <= cap:
                chunk = os.read(fd, min(cap + 1 - size, 1 << 16))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except OSError as exc:
            raise RewriterError(f"cannot read {what} {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > cap:
        raise UnfitFile(f"{option} {path}: larger than {cap // MIB} MiB")
    return b"".join(chunks)


def _refuse_unfit(fd: int, named: str, stream: int, stream_is: str) -> None:
    """Refuse an opened file (`named` as the option gives it) that is not a regular file,
    or that is standard stream `stream` itself (`stream_is` says what that means)."""
    info = os.fstat(fd)
    kind = not_regular(info)
    if kind is not None:
        raise UnfitFile(f"{named}: {kind}, not a regular file")
    if is_standard_stream(info, stream):
        raise UnfitFile(f"{named}: {stream_is}")


def not_regular(info: os.stat_result) -> str | None:
    """What a file is when it is not a regular file (`a FIFO`), or None."""
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return None
    for test, name in (
        (stat.S_ISFIFO, "a FIFO (pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"


def is_standard_stream(info: os.stat_result, fd: int) -> bool:
    """Whether `info` is the file open as descriptor `fd` (0: stdin, 1: stdout)."""
    try:
        stream = os.fstat(fd)
    except OSError:
        return False
    return (stream.st_dev, stream.st_ino) == (info.st_dev, info.st_ino)


def open_log(path: Path | str) -> TextIO:
    """`--log-file`: a regular file, appended to, or a new one (mode 0600).

    Opened without blocking and checked on the opened descriptor: a FIFO fails at once
    instead of waiting for a reader, and a device (`/dev/full`, `/dev/stdout`), a
    directory or the file stdout is redirected to (the manifests) is an error.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        kind = _kind_of(path)  # ENXIO: a FIFO without a reader, a socket
        if kind is not None:
            raise RewriterError(f"--log-file {path}: {kind}, not a regular file") from None
        raise RewriterError(f"cannot open log file {path}: {exc.strerror}") from None
    try:
        _refuse_unfit(fd, f"--log-file {path}", 1, "the file stdout writes to (the manifests)")
        os.set_blocking(fd, True)
        return open(fd, "a", encoding="utf-8", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def _kind_of(path: Path | str) -> str | None:
    try:
        return not_regular(os.stat(path))
    except OSError:
        return None
