"""`WWW-Authenticate` parsing (RFC 9110 section 11.6.1), as registries send it.

    WWW-Authenticate = #challenge
    challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
    auth-param       = token BWS "=" BWS ( token / quoted-string )

The grammar is ambiguous at the comma: in `Bearer realm="a",service="b", Basic realm="c"`
only the look-ahead after `Basic` (a token followed by a space and not by `=`) says a new
challenge starts. A hand-written scanner handles that, quoted values with `\\"` escapes,
empty list elements, and several header lines (which requests joins with ", ").

Never raises: a malformed header yields what could be read, because a probe must turn a
strange registry into a verdict, not a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Challenge", "parse_challenges"]

# RFC 9110 tchar: the characters of a token (scheme names, parameter names, bare values).
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_TOKEN68 = frozenset("-._~+/0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_SPACE = " \t"


@dataclass(frozen=True)
class Challenge:
    """One challenge: `scheme` lower-cased, parameter names lower-cased, values as sent."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None

    def get(self, name: str) -> str | None:
        return self.params.get(name.lower())


def parse_challenges(header: str | None) -> list[Challenge]:
    """Every challenge in a `WWW-Authenticate` value, in order; [] for None or garbage."""
    if not header:
        return []
    return _Scanner(header).challenges()


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    # -- low-level reads -------------------------------------------------------------

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _skip(self, chars: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1

    def _token(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _TCHAR:
            self.pos += 1
        return self.text[start : self.pos]

    def _quoted(self) -> str:
        """A quoted-string starting at the opening quote; tolerates a missing closing one."""
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            self.pos += 1
            if char == '"':
                break
            out.append(char)
        return "".join(out)

    def _bare_value(self) -> str:
        """An unquoted value. Lenient: registries send `realm=https://x/token` unquoted,
        and ':' and '/' are not tchars, so read up to the next comma or space instead."""
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ", \t":
            self.pos += 1
        return self.text[start : self.pos]

    # -- grammar ---------------------------------------------------------------------

    def challenges(self) -> list[Challenge]:
        found: list[Challenge] = []
        while True:
            self._skip(_SPACE + ",")  # empty list elements are allowed: ", ,Basic"
            if self.pos >= len(self.text):
                return found
            scheme = self._token()
            if not scheme:
                # Not a token where a scheme must be: skip to the next element.
                self._skip_element()
                continue
            found.append(self._challenge_body(scheme))

    def _skip_element(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] != ",":
            if self.text[self.pos] == '"':
                self._quoted()
            else:
                self.pos += 1

    def _challenge_body(self, scheme: str) -> Challenge:
        params: dict[str, str] = {}
        self._skip(_SPACE)
        token68 = self._try_token68()
        if token68 is not None:
            return Challenge(scheme.lower(), params, token68)
        while True:
            self._skip(_SPACE + ",")
            mark = self.pos
            name = self._token()
            if not name:
                if self.pos < len(self.text):
                    self._skip_element()  # junk such as a stray quote; keep going
                    continue
                break
            self._skip(_SPACE)
            if self._peek() != "=":
                # A token not followed by '=' is the next challenge's scheme: rewind.
                self.pos = mark
                break
            self.pos += 1
            self._skip(_SPACE)
            value = self._quoted() if self._peek() == '"' else self._bare_value()
            # First occurrence wins: a repeated parameter is invalid, and the first is what
            # the reference client (distribution's challenge parser) keeps too.
            params.setdefault(name.lower(), value)
            # A missing comma (`realm="a" service="b"`) is tolerated: the loop reads the
            # next name and decides by its '=' whether it is a parameter or a scheme.
        return Challenge(scheme.lower(), params)

    def _try_token68(self) -> str | None:
        """`Negotiate abc==`: a token68 right after the scheme, ending the challenge."""
        start = self.pos
        end = start
        while end < len(self.text) and self.text[end] in _TOKEN68:
            end += 1
        if end == start:
            return None
        while end < len(self.text) and self.text[end] == "=":
            end += 1
        rest = end
        while rest < len(self.text) and self.text[rest] in _SPACE:
            rest += 1
        if rest < len(self.text) and self.text[rest] != ",":
            return None  # `realm=...` or the next scheme: not a token68
        # `abc`, `abc==`: a token68, as RFC 9110 reads them (`realm=x` was excluded above).
        self.pos = end
        return self.text[start:end]
