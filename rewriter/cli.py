"""The command line: parse, dispatch, and turn the one error type into a message.

`main()` only parses and dispatches; commands raise RewriterError and `main()` prints
`error: ...` once and returns 1 (usage errors 2). Stdout carries only the manifest
stream (or the report a command was asked for); everything else goes to stderr.
"""

from __future__ import annotations

import atexit
import contextlib
import difflib
import functools
import gc
import inspect
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import IO, Annotated, Any, BinaryIO, TypeVar, cast

import typer
from typer._click import core as click
from typer._click import exceptions as click_errors
from typer._click import types as click_types

from rewriter import STARTED, __version__
from rewriter.decide import OFFLINE
from rewriter.diagnostics import (
    ProbeProgress,
    Reporter,
    probe_summary,
    probe_warnings,
    tell_decisions,
)
from rewriter.errors import RewriterError
from rewriter.options import OPTIONS, OUTPUT, PROBE, Check, Flags, Kind, Option, one_of
from rewriter.plan import Plan
from rewriter.probe.verdict import ProbeKey, ProbeResult
from rewriter.reference import ImageRef
from rewriter.render import Prober, find_and_decide, rewrite
from rewriter.settings import Settings, resolve

COMMANDS = ("render", "scan", "images", "cache", "krm", "kustomization", "version")
# An error message listing more lines than this shows the first ones (-v: all).
LISTED_LINES = 10

ENVIRONMENT = (
    "Every option is also an environment variable REWRITER_<NAME> (--app-slug: "
    "REWRITER_APP_SLUG; a repeatable option takes values separated by blanks), and under "
    "Argo CD the same prefixed ARGOCD_ENV_. Precedence: flag > environment > --config "
    "options > KOTS License and Application files > defaults."
)

app = typer.Typer(
    name="rewriter",
    help=(
        "Route a vendor's private images through the license proxy at render time.\n\n"
        "Reads rendered manifests (multi-document YAML) on stdin and writes them to stdout "
        "with private images rewritten to <proxy>/proxy/<app-slug>/<image>, "
        "imagePullSecrets added, and one dockerconfigjson Secret per namespace. "
        "`rewriter [OPTIONS]` is `rewriter render [OPTIONS]`."
    ),
    add_completion=True,
    no_args_is_help=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
cache_app = typer.Typer(help="Inspect or empty the probe cache.", rich_markup_mode=None)
app.add_typer(cache_app, name="cache")


def _env(name: str) -> list[str]:
    """REWRITER_<NAME>, and the same with ARGOCD_ENV_ (an Application's plugin.env)."""
    var = "REWRITER_" + name.upper().replace("-", "_")
    return [var, "ARGOCD_ENV_" + var]


def _opt(name: str, help_text: str, panel: str, **kwargs: Any) -> Any:
    # The variables are named once, in the epilog (ENVIRONMENT), not under every option.
    return typer.Option(
        f"--{name}",
        envvar=_env(name),
        show_envvar=False,
        help=help_text,
        rich_help_panel=panel,
        **kwargs,
    )


class _Checked(click_types.ParamType):
    """A value checked as it is parsed, from a flag or its environment variable: a bad
    one is a usage error naming the option (`invalid --timeout '-1': a number greater
    than 0`), in the words settings.py uses for the same value from a config file."""

    def __init__(self, check: Check) -> None:
        self.name = check.expected
        self._convert = check.convert
        self.expected = check.expected

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._convert(value)
        except ValueError:
            pass
        option = _option_name(param)
        where = ""
        source = ctx.get_parameter_source(param.name) if ctx and param and param.name else None
        if param is not None and source is click.ParameterSource.ENVIRONMENT:
            names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or ())
            given = [n for n in names if os.environ.get(n) is not None]
            where = f" (from ${given[0]})" if given else " (from the environment)"
        self.fail(f"invalid {option} {value!r}{where}: {self.expected}", param, ctx)


def _option_name(param: click.Parameter | None) -> str:
    opts = param.opts if param is not None else []
    return next((o for o in opts if o.startswith("--")), "value")


# The type typer parses each kind of option to; None when neither flag nor env gives one.
_ANNOTATIONS: dict[Kind, Any] = {
    str: str | None,
    Path: Path | None,
    bool: bool | None,
    float: float | None,
    int: int | None,
    list: list[str] | None,
}


def _typer_option(option: Option) -> tuple[Any, Any]:
    """The typer parameter of one option of the table: its flag, its variables, help."""
    extra: dict[str, Any] = {}
    if option.metavar is not None:
        extra["metavar"] = option.metavar
    if option.kind is bool:
        extra["show_default"] = False
    if option.check is not None:
        extra["click_type"] = _Checked(option.check)
    typed = _opt(option.name, option.help_text, option.panel, **extra)
    return _ANNOTATIONS[option.kind], typed


# One typer option per option of the table (a Flags field): its help is the user's
# documentation.
FLAG_OPTIONS: dict[str, tuple[Any, Any]] = {o.field: _typer_option(o) for o in OPTIONS}
assert set(FLAG_OPTIONS) == {f.name for f in fields(Flags)}

F = TypeVar("F", bound=Callable[..., Any])


# How much a command says on stderr; not settings (a config file cannot set them).
VERBOSITY: dict[str, tuple[Any, Any]] = {
    "quiet": (bool, typer.Option("--quiet", "-q", help="Say only errors on stderr (the --log-file still gets warnings).", rich_help_panel=OUTPUT)),
    "verbose": (bool, typer.Option("--verbose", "-v", help="Also say each image's decision, one line each, and every line of a long error.", rich_help_panel=OUTPUT)),
}  # fmt: skip


def with_flags(command: F) -> F:
    """Give a command every option of `Flags`, passed to it as one `flags` argument, and
    -q/-v, which set its Reporter (`ctx.obj`)."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values()]
    own = [p for p in own if p.name != "flags"]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                          annotation=Annotated[kind, option])
        for name, (kind, option) in FLAG_OPTIONS.items()
    ] + [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=False,
                          annotation=Annotated[kind, option])
        for name, (kind, option) in VERBOSITY.items()
    ]  # fmt: skip

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        flags = Flags(**{name: kwargs.pop(name) for name in FLAG_OPTIONS})
        quiet, verbose = kwargs.pop("quiet"), kwargs.pop("verbose")
        if quiet and verbose:
            raise click_errors.UsageError("--quiet and --verbose exclude each other")
        reporter: Reporter = kwargs["ctx"].obj
        reporter.quiet, reporter.verbose = quiet, verbose
        return command(flags=flags, **kwargs)

    wrapper.__signature__ = inspect.Signature(own + extra)  # type: ignore[attr-defined]
    del wrapper.__wrapped__
    return wrapper  # type: ignore[return-value]


Files = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Manifest files; stdin when none or '-'.", metavar="[FILE]...", show_default=False
    ),
]


@app.command(epilog=ENVIRONMENT)
@with_flags
def render(ctx: typer.Context, files: Files = None, *, flags: Flags) -> None:
    """Rewrite the stream: private images to the proxy, pull secrets added (the default)."""
    reporter: Reporter = ctx.obj
    out = _Stdout()
    settings = _settings(flags, reporter)
    # No name for the input: find_and_decide() lets go of it once the stream is split.
    data, names = _read_input(files)
    given = [data]
    del data
    held_documents = _holds_documents(given[0])
    prober = _prober(settings, reporter)
    plan = find_and_decide(given.pop(), settings.options, prober, reporter, files=names, lean=True)
    _tell_decisions(plan, reporter)
    for part in rewrite(plan, settings.options, reporter).parts():
        out.write(part)
    out.flush()
    _never_empty(held_documents, out)


@app.command(epilog=ENVIRONMENT)
@with_flags
def scan(
    ctx: typer.Context,
    files: Files = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            "--format",
            help="table, json (a stable schema, see the README) or yaml (the same).",
            metavar="table|json|yaml",
            click_type=_Checked(one_of("table", "json", "yaml")),
            rich_help_panel=OUTPUT,
        ),
    ] = "table",
    unclaimed: Annotated[
        bool,
        typer.Option(
            "--unclaimed", help="Also list strings that look like images but sit in no known field."
        ),
    ] = False,
    *,
    flags: Flags,
) -> None:
    """List every image: where it is, the decision and why, and its new name. No rewrite."""
    from rewriter import reports

    reporter: Reporter = ctx.obj
    out = _Stdout()
    settings = _settings(flags, reporter)
    data, names = _read_input(files)
    prober = _prober(settings, reporter)
    plan = find_and_decide(data, settings.options, prober, reporter, unclaimed, files=names)
    _tell_decisions(plan, reporter)
    if output_format == "json":
        out.write(reports.as_json(plan, with_unclaimed=unclaimed))
    elif output_format == "yaml":
        import yaml

        report = json.loads(reports.as_json(plan, with_unclaimed=unclaimed))
        out.write(yaml.safe_dump(report, sort_keys=False, width=1 << 20))
    else:
        out.write(reports.as_table(plan))
        if unclaimed:
            out.write(reports.unclaimed_table(plan))
    out.flush()


@app.command(epilog=ENVIRONMENT)
@with_flags
def images(
    ctx: typer.Context,
    files: Files = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            "--format",
            help="list (SOURCE TARGET per line) or json.",
            metavar="list|json",
            click_type=_Checked(one_of("list", "json")),
            rich_help_panel=OUTPUT,
        ),
    ] = "list",
    *,
    flags: Flags,
) -> None:
    """The distinct source images and the name each becomes: what an air-gap bundle must copy."""
    from rewriter import reports

    reporter: Reporter = ctx.obj
    out = _Stdout()
    settings = _settings(flags, reporter)
    prober = _prober(settings, reporter)
    data, names = _read_input(files)
    plan = find_and_decide(data, settings.options, prober, reporter, files=names)
    _tell_decisions(plan, reporter)
    additional = reports.decide_additional(
        settings.additional_images, settings.options.rules, prober
    )
    rows = reports.image_rows(plan, additional)  # raises when any cannot be rewritten
    if output_format == "json":
        out.write(json.dumps(rows, indent=2) + "\n")
    else:
        out.write(reports.images_list(rows))
    out.flush()


def _tell_decisions(plan: Plan, reporter: Reporter) -> None:
    if reporter.verbose:
        tell_decisions(reporter, plan.decided)


@app.command(epilog=ENVIRONMENT)
@with_flags
def krm(ctx: typer.Context, *, flags: Flags) -> None:
    """Run as a kustomize KRM function: a ResourceList on stdin, the rewritten one on stdout.

    Configured by its functionConfig (kind RewriterConfig, or a ConfigMap), the
    environment and these options; see docs/kustomize.md.
    """
    from rewriter.hosts import krm as function

    out = _Stdout()
    data = sys.stdin.buffer.read()
    function.run(data, flags, os.environ, ctx.obj, _prober, cast(IO[bytes], out))
    _never_empty(_holds_documents(data), out)


@app.command(epilog=ENVIRONMENT)
@with_flags
def kustomization(
    ctx: typer.Context,
    resources: Annotated[
        Path,
        typer.Option(
            "--resources",
            help="The base: a kustomization directory or a YAML file.",
            metavar="BASE",
            show_default=False,
        ),
    ],
    output_dir: Annotated[
        Path,
        typer.Option(
            "--output-dir",
            help="Where to write kustomization.yaml and pull-secret.yaml.",
            metavar="DIR",
            show_default=False,
        ),
    ],
    *,
    flags: Flags,
) -> None:
    """Write the KOTS midstream form: a kustomization over BASE with images: entries, the
    pull Secret and imagePullSecrets patches; `kustomize build DIR` equals the render."""
    from rewriter.hosts import kustomization as midstream

    reporter: Reporter = ctx.obj
    settings = _settings(flags, reporter)
    midstream.generate(resources, output_dir, settings, _prober(settings, reporter), reporter)


@cache_app.command("info")
def cache_info(
    cache: Annotated[str | None, _opt("cache", "The cache to inspect.", PROBE)] = None,
) -> None:
    """Where the probe cache is and how many answers it holds."""
    from rewriter.probe.cache import admin
    from rewriter.probe.cache.spec import default_cache_path

    out = _Stdout()
    out.write(admin.cache_info(cache or default_cache_path()) + "\n")
    out.flush()


@cache_app.command("clear")
def cache_clear(
    cache: Annotated[str | None, _opt("cache", "The cache to empty.", PROBE)] = None,
) -> None:
    """Forget every cached probe answer."""
    from rewriter.probe.cache import admin
    from rewriter.probe.cache.spec import default_cache_path

    removed = admin.cache_clear(cache or default_cache_path())
    sys.stderr.write(f"removed {removed} cached answer(s)\n")


def _settings(flags: Flags, reporter: Reporter) -> Settings:
    # Open a log file given by flag or env first, so configuration errors reach it too
    # (under Helm 4 the log is the only place they can be read).
    if flags.log_file is not None:
        reporter.open_log(flags.log_file)
    settings = resolve(flags, os.environ)
    if settings.log_file is not None and reporter.log is None:
        reporter.open_log(settings.log_file)
    return settings


class StdoutError(RewriterError):
    """Stdout cannot be written: closed, a broken pipe, a full disk."""


class _Stdout:
    """Stdout as the commands write it: bytes counted, a write error named as such."""

    def __init__(self) -> None:
        stream = sys.stdout
        if stream is None or getattr(stream, "buffer", None) is None:
            # Started with descriptor 1 closed (`rewriter >&-`).
            raise StdoutError("cannot write the output: stdout is closed")
        self.buffer: BinaryIO = stream.buffer
        self.written = 0

    def write(self, data: bytes | str) -> int:
        if isinstance(data, str):
            data = data.encode("utf-8")
        try:
            self.buffer.write(data)
        except (OSError, ValueError) as exc:
            raise _write_error(exc) from None
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        try:
            self.buffer.flush()
        except (OSError, ValueError) as exc:
            raise _write_error(exc) from None


def _write_error(exc: Exception) -> StdoutError:
    if isinstance(exc, BrokenPipeError):
        return StdoutError("cannot write the output: stdout was closed by its reader (broken pipe)")
    if isinstance(exc, OSError):
        return StdoutError(f"cannot write the output to stdout: {exc.strerror or exc}")
    return StdoutError("cannot write the output: stdout is closed")


def _holds_documents(data: bytes) -> bool:
    """Whether a stream has any content beyond blank lines, comments, directives and
    document markers: one that must not render to nothing."""
    return _CONTENT.search(data) is not None


_CONTENT = re.compile(
    rb"(?m)^(?:\xef\xbb\xbf)?[ \t]*(?![ \t\r]*$|#|%|(?:---|\.\.\.)[ \t\r]*(?:#.*)?$)\S"
)


def _never_empty(held_documents: bool, out: _Stdout) -> None:
    """The second guard behind the regular-file rule: a render whose input held
    documents never succeeds with empty output (a tool applying it with prune would
    delete everything)."""
    if held_documents and out.written == 0:
        raise RewriterError(
            "the input held documents but the output is empty; nothing was written\n"
            "  (was stdin read by something else, e.g. an option naming /dev/stdin?)"
        )


def _read_input(files: Sequence[Path] | None) -> tuple[bytes, list[tuple[str, int]]]:
    """The input as one stream, and with several files, each file's name and where its
    bytes start in the stream (for messages that name the file: see stream.split)."""
    if not files:
        return sys.stdin.buffer.read(), []
    parts = []
    for path in files:
        if str(path) == "-":
            parts.append(("stdin", sys.stdin.buffer.read()))
            continue
        try:
            parts.append((str(path), path.read_bytes()))
        except OSError as exc:
            raise RewriterError(f"cannot read {path}: {exc.strerror}") from None
    data, starts = _join_streams([part for _, part in parts])
    if len(parts) < 2:
        return data, []
    return data, [(name, start) for (name, _), start in zip(parts, starts, strict=True)]


def _join_streams(parts: list[bytes]) -> tuple[bytes, list[int]]:
    """Concatenate files as one stream: each file's documents stay separate. Also where
    each file's bytes start in it."""
    if len(parts) == 1:
        return parts[0], [0]  # no copy of the common single file
    pieces: list[bytes] = []
    starts = []
    size = 0
    for part in parts:
        if size and not pieces[-1].endswith(b"\n"):
            pieces.append(b"\n")
            size += 1
        if size and not part.startswith(b"---"):
            pieces.append(b"---\n")
            size += 4
        starts.append(size)
        if part:
            pieces.append(part)
            size += len(part)
    return b"".join(pieces), starts


def _prober(settings: Settings, reporter: Reporter) -> Prober:
    """The probe, built only when an image needs one (see rewriter/probe/__init__.py: the
    cache first, without the network stack; the registries for the rest)."""

    def probe(refs: Sequence[ImageRef]) -> dict[ProbeKey, ProbeResult]:
        from rewriter.probe import answers
        from rewriter.probe.cache.spec import default_cache_path, parse_spec
        from rewriter.probe.policy import ProbeSettings

        probe_settings = ProbeSettings(
            concurrency=settings.concurrency,
            timeout=settings.timeout,
            deadline=settings.deadline,
            insecure_registries=settings.insecure_registries,
            ca_bundle=settings.ca_bundle,
            allow=settings.probe_allow,
            deny=settings.probe_deny,
            started_at=_render_started,
        )
        spec = parse_spec(settings.cache or default_cache_path())
        progress = ProbeProgress(reporter, len({ref.registry for ref in refs}))
        try:
            found = answers(
                refs,
                probe_settings,
                spec,
                settings.cache_ttl,
                reporter.warn,
                settings.offline,
                progress.update,
            )
        finally:
            seconds = progress.finish()
        policy = settings.options.rules.on_probe_error.value
        for notice in probe_warnings(refs, found, policy):
            reporter.warn(notice)
        asked = {
            key: answer
            for key, answer in found.items()
            if not answer.cached and answer.detail != OFFLINE
        }
        if asked and (progress.shown or not reporter.is_terminal()):
            reporter.info(probe_summary(asked, seconds))
        return found

    return probe


@contextlib.contextmanager
def _closing_log(reporter: Reporter) -> Iterator[None]:
    try:
        yield
    finally:
        if reporter.log is not None:
            reporter.log.close()


# When the current render began, for --deadline; see _start_clock.
_render_started: float | None = None
_process_started: float | None = STARTED


def _start_clock() -> None:
    """A process's first render counts from the package import (Argo CD and Helm wait for
    the whole process, start-up included); later in-process renders from their start."""
    global _render_started, _process_started
    _render_started = _process_started if _process_started is not None else time.monotonic()
    _process_started = None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `rewriter`, `python -m rewriter` and `python plugin.py`."""
    _start_clock()
    if argv is None:
        # The process ends after this call: spare the interpreter's final collection of
        # everything imported (0.3-0.5 s with requests-cache's dependencies), time that
        # Argo CD and Helm wait for and that would come on top of --deadline.
        atexit.register(gc.freeze)
        # A render builds many small node objects that all live until it ends: the
        # cyclic collector would scan them again and again (a quarter of the CPU) and
        # free nothing.
        gc.disable()
    args = list(sys.argv[1:] if argv is None else argv)
    reporter = Reporter()
    unknown = _unknown_command(args[0]) if args else None
    if unknown is not None:
        reporter.error(f"{unknown} (see rewriter --help)")
        return 2
    if args[:1] in ([], ["-"]) or (args[0] not in COMMANDS and args[0] not in TOP_LEVEL):
        args.insert(0, "render")  # `rewriter [OPTIONS]` is `rewriter render [OPTIONS]`
    if sys.stdout is None and any(arg in ("-h", "--help") for arg in args):
        # Help goes through typer's rich console, which writes nowhere without a stdout.
        reporter.error(str(_write_error(ValueError())))
        return 1
    command = typer.main.get_command(app)
    _add_version_options(command)
    with _closing_log(reporter):
        try:
            # Not standalone: usage errors come here, to be said like any other error.
            # Help and --version end with an exit code (0), returned as the result.
            code = command.main(args, prog_name="rewriter", obj=reporter, standalone_mode=False)
        except SystemExit as exc:
            if isinstance(exc.__context__, BrokenPipeError):
                # Help written through rich, which answers a broken pipe with a silent
                # SystemExit(1) (stdout already pointed at /dev/null): say it like ours.
                reporter.error(str(_write_error(exc.__context__)))
                return 1
            return exc.code if isinstance(exc.code, int) else 1  # shell completion
        except click_errors.UsageError as exc:
            message = _usage_message(exc, f"rewriter {args[0]}")
            if args[0] == "krm":
                try:
                    _krm_usage_answer(message)
                except StdoutError as answer:
                    message += f"\n  {answer}"
            reporter.error(message)
            return 2
        except typer.Abort:
            reporter.error("interrupted")
            return 130
        except RewriterError as exc:
            reporter.error(_shortened(str(exc), reporter.verbose))
            if isinstance(exc, StdoutError):
                _drop_stdout()
            return 1
        except BrokenPipeError:  # help text, written by click itself
            reporter.error(str(_write_error(BrokenPipeError())))
            _drop_stdout()
            return 1
        except Exception as exc:
            # A bug of ours: still one line and no partial output, unless asked to debug.
            if os.environ.get("REWRITER_DEBUG"):
                raise
            reporter.error(
                f"internal error: {type(exc).__name__}: {exc} (REWRITER_DEBUG=1 shows more)"
            )
            return 1
    return code if isinstance(code, int) else 0


def _drop_stdout() -> None:
    """After a stdout write error, point descriptor 1 at /dev/null: what is left in
    Python's buffers would fail again at exit (`Exception ignored ... BrokenPipeError`)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


TOP_LEVEL = ("-h", "--help", "--version", "--install-completion", "--show-completion")


def _unknown_command(first: str) -> str | None:
    """The message for a first word that is neither a command nor a file: a mistyped
    command should not read as `cannot read scna`."""
    if first in COMMANDS or first in TOP_LEVEL or first.startswith("-") or first == "-":
        return None
    if Path(first).exists():
        return None
    close = difflib.get_close_matches(first, COMMANDS, n=1)
    if close:
        return f"no such command {first!r}; did you mean {close[0]!r}?"
    if "/" in first or "." in first:
        return None  # a file name: `cannot read ...` says what is wrong with it
    return f"no such command or file {first!r}"


def _usage_message(exc: click_errors.UsageError, command: str) -> str:
    """One line in the `error:` style, naming the option, with where to read more."""
    if isinstance(exc, click_errors.NoSuchOption):
        text = f"no such option {exc.option_name!r}"
        close = difflib.get_close_matches(exc.option_name, exc.possibilities or [], n=1)
        if close:
            text += f"; did you mean {close[0]!r}?"
    elif isinstance(exc, click_errors.BadParameter) and exc.message.startswith("invalid "):
        text = exc.message  # ours (_Checked): the option, the value and what is expected
    else:
        text = " ".join(exc.format_message().split()).rstrip(".")
        text = text.replace(". Did you mean", "; did you mean")
        text = text[:1].lower() + text[1:]
    if exc.ctx is not None and exc.ctx.command_path != "rewriter":
        command = exc.ctx.command_path
    return f"{text} (see {command} --help)"


def _krm_usage_answer(message: str) -> None:
    """Even a usage error is answered with a ResourceList (its items unchanged, the error
    in `results`): a KRM function's host reads stdout whatever the exit code."""
    from rewriter.hosts import krm as function

    data = b"" if sys.stdin.isatty() else sys.stdin.buffer.read()
    out = _Stdout()
    out.write(function.failed_answer(data, message))
    out.flush()


def _shortened(message: str, verbose: bool) -> str:
    """A long list (hundreds of images that cannot be rewritten) cut to its first lines;
    --verbose shows it all."""
    lines = message.split("\n")
    if verbose or len(lines) <= LISTED_LINES + 2:
        return message
    rest = len(lines) - 1 - LISTED_LINES
    return "\n".join([*lines[: 1 + LISTED_LINES], f"  ... and {rest} more (-v lists them all)"])


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        _say_version()
        ctx.exit()


def _add_version_options(command: click.Command) -> None:
    """`--version` on every command, as on the top level."""
    if not any(param.name == "version" for param in command.params):
        command.params.append(
            typer.core.TyperOption(
                param_decls=["--version"],
                is_flag=True,
                expose_value=False,
                is_eager=True,
                callback=_print_version,
                help="Print the version and exit.",
            )
        )
    for sub in getattr(command, "commands", {}).values():
        _add_version_options(sub)


@app.command("version")
def version() -> None:
    """Print the version."""
    _say_version()


def _say_version() -> None:
    out = _Stdout()
    out.write(f"rewriter {__version__}\n")
    out.flush()


def version_callback(value: bool) -> None:
    if value:
        _say_version()
        raise typer.Exit()


@app.callback()
def top(
    version: Annotated[
        bool | None,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Print the version."
        ),
    ] = None,
) -> None:
    """Route a vendor's private images through the license proxy at render time."""
