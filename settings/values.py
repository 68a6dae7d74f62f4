"""The grammars of the config values that reach nginx, files, env lines, host paths and URLs.

Each check takes a string and returns it unchanged, or raises `Invalid` (a
ValueError) whose message says what is allowed and, where one is clear, the
value to use instead (`suggestion`). settings/model.py attaches them to fields;
settings/load.py words the error as `shia-chatbot:<key> = <value>: <message>`.

Host names are ASCII and lowercase: the domain is nginx's `server_name`, a
directory of the certificate path (`live/<domain>/`) and what browsers send,
so the three must agree byte for byte. A non-ASCII name is refused with its
A-label (punycode, IDNA2008 style: NFC, lowercase, per label) to use instead.
"""

from __future__ import annotations

import ipaddress
import json
import re
import unicodedata
from typing import Optional

# RFC 1123 labels; the last (top-level) label is never all digits (RFC 3696 2).
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_SCHEME_HOST = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<rest>.*)", re.S)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 5322 dot-atom (no quoted local parts, no comments).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_PATH_NAME = re.compile(r"[A-Za-z0-9._-]+")
_URL_SEGMENT = re.compile(r"[A-Za-z0-9._~%-]+")
_AWS_REGION = re.compile(r"[a-z]{2,4}(?:-[a-z]+)+-[1-9][0-9]?")

# Image references, after github.com/distribution/reference (reference.go's grammar):
#   reference := name [":" tag] ["@" digest];  name := [domain "/"] path-component ["/" path-component]*
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REFERENCE = re.compile(
    rf"(?:(?P<domain>{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?)/)?"
    rf"(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?",
    re.ASCII,
)
_NAME_MAX = 255  # distribution/reference NameTotalLengthMax
# The algorithms go-digest knows, lowercase hex as it requires.
_PINNING_DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")

# What no value may hold: C0/C1 controls and DEL (a line break ends an env-file
# line or a YAML scalar), format characters (bidi overrides, zero-width space:
# text that reads differently from what it is) and the Unicode line separators.
_CONTROL_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")

HOST_NAME_RULE = ("a DNS host name: dot-separated labels of 1-63 lowercase letters, digits and '-' "
                  "(not first or last), at most 253 characters, the last label not all digits")


class Invalid(ValueError):
    """A value outside its grammar. `reason` says what is allowed; `suggestion` is
    the corrected value when there is one (the message ends `; use "<it>"`)."""

    def __init__(self, reason: str, suggestion: Optional[str] = None):
        super().__init__(reason + (f"; use {json.dumps(suggestion)}" if suggestion is not None else ""))
        self.reason = reason
        self.suggestion = suggestion


def control_characters(value: str, allowed: str = "") -> list[str]:
    """The code points (`U+000A`) of control and invisible format characters in `value`."""
    return sorted({f"U+{ord(c):04X}" for c in value
                   if c not in allowed and unicodedata.category(c) in _CONTROL_CATEGORIES})


def a_label(name: str) -> Optional[str]:
    """The ASCII (A-label) form of a non-ASCII host name, or None if it has none.

    NFC and lowercase, then punycode per label, as IDNA2008 without its code
    point tables. The stdlib's "idna" codec is IDNA2003, which maps `ß` to
    `ss` and so names a different host than browsers resolve."""
    labels = []
    for label in unicodedata.normalize("NFC", name).lower().split("."):
        try:
            labels.append(label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii"))
        except UnicodeError:
            return None
    candidate = ".".join(labels)
    try:
        return host_name(candidate)
    except Invalid:
        return None


def host_name(value: str) -> str:
    """An ASCII, lowercase RFC 1123 host name (`shia-chatbot.example.org`, `localhost`)."""
    if "://" in value:
        authority = value.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0]
        raise Invalid("must be a host name, not a URL", _fixed_host(authority) or _or_none(host_name, authority))
    if not value.isascii():
        ascii_form = a_label(value)
        if ascii_form is None:
            raise Invalid(f"must be {HOST_NAME_RULE}")
        raise Invalid("non-ASCII host names are refused, so config, certificate and nginx's server_name "
                      "agree byte for byte", ascii_form)
    if value != value.lower():
        raise Invalid("must be lowercase", _or_none(host_name, value.lower()))
    if value.endswith(".") and value != ".":
        raise Invalid("must be written without the trailing dot", _or_none(host_name, value[:-1]))
    labels = value.split(".")
    if len(value) > 253 or not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise Invalid(f"must be {HOST_NAME_RULE}")
    for label in labels:
        if label.startswith("xn--"):
            try:
                label[4:].encode("ascii").decode("punycode")
            except UnicodeError:
                raise Invalid(f"label {label!r} is not a valid A-label (punycode)") from None
    return value


def ipv4(value: str) -> str:
    """A dotted-quad IPv4 address without leading zeros (`127.0.0.1`)."""
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise Invalid("must be an IPv4 address like 127.0.0.1") from None
    return value


def _looks_like_ipv4(value: str) -> bool:
    return bool(value) and all(part.isdigit() for part in value.split("."))


def host(value: str) -> str:
    """A host name, or an IPv4 address."""
    return ipv4(value) if _looks_like_ipv4(value) else host_name(value)


def port(value: str) -> int:
    """A TCP port, 1-65535, written without leading zeros; returns it as an int."""
    if not _PORT.fullmatch(value) or int(value) > 65535:
        raise Invalid(f"port {value!r} must be a number from 1 to 65535")
    return int(value)


def host_and_port(value: str) -> str:
    """`host[:port]`: a registry server (`ghcr.io`, `registry.example.org:5000`), no scheme or path."""
    if "://" in value or "/" in value:
        bare = value.split("://", 1)[-1].split("/", 1)[0]
        raise Invalid("must be host[:port], without a scheme or path", _or_none(host_and_port, bare))
    name, colon, number = value.partition(":")
    try:
        host(name)
    except Invalid as error:
        suggestion = f"{error.suggestion}{colon}{number}" if error.suggestion else None
        raise Invalid(f"host {name!r}: {error.reason}", suggestion) from None
    if colon:
        port(number)
    return value


def origin(value: str) -> str:
    """A browser origin: http(s)://host[:port], no path, query or trailing slash.
    `*` and a wildcard host (`https://*.example.org`) pass here; settings/load.py
    allows them in dev only."""
    if value == "*":
        return value
    match = _SCHEME_HOST.fullmatch(value)
    scheme = match["scheme"].lower() if match else None
    if scheme not in _DEFAULT_PORTS:
        raise Invalid("must be an origin: http(s)://host[:port]")
    authority, rest = match["authority"], match["rest"]
    if "@" in authority:
        raise Invalid("an origin has no user name or password")
    wildcard, name, number = _split_authority(authority, wildcard=True)
    fixed = _checked_host(name)
    if number is not None and port(number) == _DEFAULT_PORTS[scheme]:
        raise Invalid(f"browsers send the origin without the default port :{number}",
                      f"{scheme}://{wildcard}{fixed}")
    suggestion = f"{scheme}://{wildcard}{fixed}{'' if number is None else ':' + number}"
    if rest == "/":
        raise Invalid("no trailing slash: browsers send the origin without one", suggestion)
    if rest:
        raise Invalid("an origin has no path, query or fragment", suggestion)
    if suggestion != value:
        raise Invalid("must be lowercase ASCII, as browsers send it", suggestion)
    return value


def url(value: str) -> str:
    """An http(s) URL: scheme, host, optional port and path; no credentials, query,
    fragment or trailing slash (clients append their own paths)."""
    match = _SCHEME_HOST.fullmatch(value)
    if match is None or match["scheme"].lower() not in _DEFAULT_PORTS:
        raise Invalid("must be an http(s) URL: https://host[:port][/path]")
    scheme, authority, rest = match["scheme"], match["authority"], match["rest"]
    if "@" in authority:
        raise Invalid("credentials do not belong in plain config; keep them in a secret")
    if "?" in rest or "#" in rest:
        raise Invalid("must not carry a query or fragment")
    _, name, number = _split_authority(authority, wildcard=False)
    fixed = _checked_host(name)
    if number is not None:
        port(number)
    path = rest.rstrip("/")
    if path and not all(_URL_SEGMENT.fullmatch(segment) for segment in path[1:].split("/")):
        raise Invalid("path segments may hold letters, digits and . _ ~ % - only")
    suggestion = f"{scheme.lower()}://{fixed}{'' if number is None else ':' + number}{path}"
    if rest.endswith("/"):
        raise Invalid("no trailing slash (clients append their own paths)", suggestion)
    if suggestion != value:
        raise Invalid("scheme and host must be lowercase ASCII", suggestion)
    return value


def email(value: str) -> str:
    """An e-mail address `local@domain`: an RFC 5322 dot-atom before a host name with a dot."""
    local, at, domain = value.rpartition("@")
    if not at or not local:
        raise Invalid("must be an e-mail address like ops@example.org")
    if not local.isascii():
        raise Invalid("non-ASCII local parts need SMTPUTF8, which is not assumed")
    if not _LOCAL_PART.fullmatch(local) or len(local) > 64 or len(value) > 254:
        raise Invalid("must be an e-mail address: a local part of letters, digits and !#$%&'*+/=?^_`{|}~- "
                      "(dots between them, at most 64), '@' and a host name")
    try:
        host_name(domain)
    except Invalid as error:
        suggestion = f"{local}@{error.suggestion}" if error.suggestion else None
        raise Invalid(f"domain {domain!r}: {error.reason}", suggestion) from None
    if "." not in domain:
        raise Invalid("the domain must have a dot (mail to a bare host name does not leave it)")
    return value


def login(value: str) -> str:
    """A user name to log in with: printable ASCII, no spaces (`apikey`, `AKIA...`, `ops@example.org`)."""
    if not value or not all("!" <= c <= "~" for c in value) or len(value) > 256:
        raise Invalid("must be 1-256 printable ASCII characters without spaces")
    return value


def registry_login(value: str) -> str:
    """A registry user name: a login without ':' (HTTP basic auth joins user:password)."""
    login(value)
    if ":" in value:
        raise Invalid("must not contain ':' (registries join user:password for basic auth)")
    return value


def host_path(value: str) -> str:
    """An absolute, normalised host directory (`/etc/letsencrypt`): names of letters,
    digits, '.', '_' and '-'. It is a bind mount and a path in nginx's config."""
    if not value.startswith("/"):
        raise Invalid("must be an absolute host path (starting with '/')")
    parts = value[1:].split("/")
    if ".." in parts:
        raise Invalid("must not contain '..': name the directory itself")
    names = [part for part in parts if part not in ("", ".")]
    if not names:
        raise Invalid("must be a directory below /, not the host's root")
    if not all(_PATH_NAME.fullmatch(name) for name in names):
        raise Invalid("path names may hold letters, digits, '.', '_' and '-' only "
                      "(no spaces, ':', quotes or shell characters)")
    if len(names) != len(parts):
        raise Invalid("must be normalised (no '//', '/./' or trailing '/')", "/" + "/".join(names))
    return value


def aws_region(value: str) -> str:
    """An AWS region code (`eu-central-1`, `us-gov-west-1`); it is part of the S3 endpoint's host."""
    if not _AWS_REGION.fullmatch(value):
        lowered = value.strip().lower()
        raise Invalid("must be an AWS region code like eu-central-1",
                      lowered if _AWS_REGION.fullmatch(lowered) else None)
    return value


def image_reference(value: str) -> str:
    """A Docker image reference ([registry[:port]/]path[:tag][@digest]) that is pinned:
    a tag other than `latest`, or a sha256/sha512 digest."""
    match = _REFERENCE.fullmatch(value)
    name = match and (f"{match['domain']}/" if match["domain"] else "") + match["path"]
    if not name or len(name) > _NAME_MAX:
        path = _repository_path(value)
        hint = " (repository paths are lowercase)" if path != path.lower() else ""
        raise Invalid("must be an image reference [registry[:port]/]path[:tag][@digest], path components of "
                      f"lowercase letters and digits joined by '.', '_', '__' or '-'{hint}")
    digest, tag = match["digest"], match["tag"]
    if digest is not None and not _PINNING_DIGEST.fullmatch(digest):
        raise Invalid("the digest must be sha256:<64 lowercase hex> or sha512:<128 lowercase hex>")
    if digest is None and (tag is None or tag == "latest"):
        raise Invalid("must carry a tag other than 'latest' (name:1.2.3) or a digest (name@sha256:...)")
    return value


def _repository_path(reference: str) -> str:
    """The path part of a reference: no digest, tag or registry (a first component with
    '.' or ':', or `localhost`, is a registry, as distribution/reference splits it)."""
    name = reference.split("@", 1)[0]
    head, colon, tail = name.rpartition(":")
    if colon and "/" not in tail:
        name = head
    first, slash, rest = name.partition("/")
    return rest if slash and ("." in first or ":" in first or first == "localhost") else name


def _split_authority(authority: str, *, wildcard: bool) -> tuple[str, str, Optional[str]]:
    """(wildcard prefix, host, port or None) of a URL's authority (one without user info)."""
    name, colon, number = authority.partition(":")
    prefix = ""
    if wildcard and name.startswith("*."):
        prefix, name = "*.", name[2:]
    return prefix, name, number if colon else None


def _fixed_host(name: str) -> Optional[str]:
    """The corrected form of a host that is only wrong in case or script, else None."""
    if not name.isascii():
        return a_label(name)
    if name != name.lower():
        return _or_none(host, name.lower())
    return None


def _checked_host(name: str) -> str:
    """`name`, or its lowercase ASCII form when only case or script is wrong; Invalid otherwise."""
    fixed = _fixed_host(name)
    if fixed is not None:
        return fixed
    try:
        return host(name)
    except Invalid as error:
        raise Invalid(f"host {name!r}: {error.reason}", error.suggestion) from None


def _or_none(check, value: str) -> Optional[str]:
    try:
        check(value)
    except Invalid:
        return None
    return value
