"""Two public request corpora, replayed byte for byte over a real socket (issue "Correctness II").

``tests/corpora/`` holds gunicorn's ``tests/requests/{valid,invalid}`` and llhttp's
``test/request/*.md``, copied by ``scripts/import_corpora.py`` with their MIT licences beside them
(``SOURCE`` names the commit). Each case is sent on a fresh connection, then the client half-closes;
the server answers through an app that reads the whole body. The verdict we observe is "served"
(every response 2xx) or "refused" (a 4xx/5xx, or no answer at all), and it must equal the corpus's:
gunicorn's folder, or whether llhttp's expected log has a parse error. Where asyncwsgi answers
differently on purpose, ``DIFFERENT`` says so and why; a case that changes verdict either way
fails, so a new leniency (or a new refusal) cannot go unnoticed.

An HTTP/1.1 case without a Host header gets ``Host: corpus`` added after its request line: we
refuse such requests (RFC 9112 §3.2 says a server MUST), and the corpora are about everything else.
"""

from __future__ import annotations

import json
import re
import socket
from typing import Dict, Iterator, List, Tuple

import pytest

from tests.helpers import WAIT, ServerThread
from tests.proc import ROOT

CORPORA = ROOT / "tests" / "corpora"

Case = Tuple[str, bytes, str]  # id, bytes to send, the corpus's verdict


# --- gunicorn: one .http file per case; the folder is the verdict ------------------------------


def _gunicorn_bytes(text: bytes) -> bytes:
    """gunicorn's .http escaping: file newlines are layout; \\r\\n, \\n, \\t, \\0, \\xHH are bytes."""
    data = text.replace(b"\n", b"").replace(b"\\r\\n", b"\r\n")
    data = data.replace(b"\\0", b"\0").replace(b"\\n", b"\n").replace(b"\\t", b"\t")
    return re.sub(rb"\\x([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), data)


def gunicorn_cases() -> Iterator[Case]:
    root = CORPORA / "gunicorn"
    for line in (root / "cases.tsv").read_text().splitlines():
        if line.startswith("#"):
            continue
        name, verdict, _raised, settings = line.split("\t")
        if "proxy_protocol" in settings:
            continue  # PROXY protocol cases: tests/server/test_proxy_protocol.py covers ours
        data = _gunicorn_bytes((root / f"{name}.http").read_bytes())
        yield f"gunicorn/{name}", data, "served" if verdict == "valid" else "refused"


# --- llhttp: markdown with an http block and the parser's expected log per case -----------------


def _llhttp_bytes(block: str) -> bytes:
    """llhttp's md-test rules: newlines are CRLF; \\r \\n \\t \\f \\xHH and \\NNN are bytes."""
    text = re.sub(r"\n\Z", "", block)
    text = re.sub(r"\\(\r\n|\r|\n)", "", text)
    text = re.sub(r"\r\n|\r|\n", "\r\n", text)
    text = text.replace("\\r", "\r").replace("\\n", "\n").replace("\\t", "\t").replace("\\f", "\f")
    text = re.sub(r"\\x([0-9a-fA-F]+)", lambda m: chr(int(m.group(1), 16)), text)
    text = re.sub(r"\\([0-7]{1,3})", lambda m: chr(int(m.group(1), 8)), text)
    # Escapes give single bytes; text beyond latin-1 (a few cases' UTF-8) is sent as UTF-8.
    return b"".join(bytes([ord(c)]) if ord(c) < 256 else c.encode() for c in text)


# llhttp "errors" that hand the connection over rather than refuse it: CONNECT/Upgrade, PRI.
_HANDOVER = re.compile(r'error code=2[23] reason="Pause on')


def llhttp_cases() -> Iterator[Case]:
    for path in sorted((CORPORA / "llhttp").glob("*.md")):
        lines = path.read_text().splitlines(keepends=True)
        meta: Dict[str, object] = {}
        blocks: Dict[str, str] = {}
        section = heading = ""
        index = 0
        while index < len(lines):
            line = lines[index]
            if line.startswith("## "):
                section = heading = line[3:].strip()
            elif line.startswith("### "):
                heading = f"{section} {line[4:].strip()}" if section else line[4:].strip()
            elif line.startswith("<!-- meta="):
                meta = json.loads(line[len("<!-- meta=") : line.rindex("-->")])
            elif line.startswith("```") and line.strip() != "```":
                kind = line.strip()[3:]
                end = index + 1
                while lines[end].rstrip("\r\n") != "```":
                    end += 1
                blocks[kind] = "".join(lines[index + 1 : end])
                index = end
                if "http" in blocks and "log" in blocks:
                    kind_of = str(meta.get("type", ""))
                    # skipBody is an API mode (the caller skips the body), not how bytes parse.
                    if kind_of.startswith("request") and not meta.get("skipBody"):
                        yield _llhttp_case(path.stem, heading, kind_of, blocks["http"], blocks["log"])
                    blocks = {}
            index += 1


def _llhttp_case(file: str, heading: str, kind: str, http: str, log: str) -> Case:
    lines = [line for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if "error code=" in line and not _HANDOVER.search(line)]
    if errors or kind.startswith("request-lenient"):
        # A lenient case's log is for llhttp with that leniency on; its default mode refuses it.
        verdict = "refused"
    elif _ends_whole(lines):
        verdict = "served"
    else:
        verdict = "incomplete"  # the bytes end inside a message: no verdict but "not served"
    slug = re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")
    return f"llhttp/{file}/{slug}", _llhttp_bytes(http), verdict


def _ends_whole(lines: List[str]) -> bool:
    """The last message the log begins is completed (or handed over, or cleanly finished)."""
    for line in reversed(lines):
        if line.endswith("message complete") or line.endswith("finish=0") or _HANDOVER.search(line):
            return True
        if line.endswith("message begin"):
            return False
    return False


def _with_host(data: bytes) -> bytes:
    """``Host: corpus`` after each HTTP/1.1 request line whose head has no Host."""
    out = []
    last = 0
    for match in _REQUEST_LINE.finditer(data):
        head = data[match.end() : data.find(b"\r\n\r\n", match.end()) + 2]
        if re.search(rb"(^|\r\n)host:", b"\r\n" + head, re.IGNORECASE):
            continue
        out.append(data[last : match.end()] + b"Host: corpus\r\n")
        last = match.end()
    out.append(data[last:])
    return b"".join(out)


_REQUEST_LINE = re.compile(rb"(?:^|(?<=\n))[!#$%&'*+\-.^_`|~0-9A-Za-z]+ \S+ HTTP/1\.1\r\n")


_LIMITS = "a limit: ours are 8 KiB per request line and per field (gunicorn: 4094 and 8190), all flags"
_NOT_HTTP = "not HTTP/1.x: answered 400 (RTSP, ICE and HTTP/0.9 are other protocols)"
_CONNECT = "CONNECT: a WSGI server is not a proxy; its authority-form target is refused (400)"
_CODING = (
    "a transfer coding we do not implement before chunked: 501 (RFC 9112 §6.1); serving it would hand the "
    "app a body it cannot read"
)
_GUNICORN_SETTING = "passes only with a non-default gunicorn setting (cases.tsv names it); at its defaults gunicorn"
_METHOD = "a method is any token (RFC 9110 §9.1): the app decides (405/501); llhttp and gunicorn keep a list"
_UNDERSCORE = "header names with '_' are dropped (as nginx and waitress do), not refused; the rest is served"
_CLOSE = (
    "the bytes after a request that ends the connection (HTTP/1.0, Connection: close) are never parsed: the "
    "request is answered with Connection: close and the rest discarded, where llhttp reports an error"
)
_UPGRADE = (
    "we never switch protocols (RFC 9110 §7.8): the bytes after an Upgrade request are the next HTTP request, "
    "and these are not one (400 after the first answer)"
)

# Cases where asyncwsgi answers differently from the corpus on purpose: id -> why.
DIFFERENT: Dict[str, str] = {
    # gunicorn: valid there, refused here
    "gunicorn/valid/005": "a fragment in the target: RFC 9112 §3.2 has none, so 400 (gunicorn strips it)",
    "gunicorn/valid/009": "Transfer-Encoding with Content-Length: 400 whatever the coding (RFC 9112 §6.1)",
    "gunicorn/valid/024": f"{_LIMITS}; the case raises gunicorn's to 8200/8210",
    "gunicorn/valid/026": f"{_LIMITS}; the case raises gunicorn's to 8210",
    "gunicorn/valid/025": _CODING,
    "gunicorn/valid/025_line": _CODING,
    "gunicorn/valid/029": _CODING + " ('identity' is no longer a coding, RFC 9112 §7)",
    "gunicorn/valid/030": _CODING + " ('identity' is no longer a coding, RFC 9112 §7)",
    "gunicorn/valid/rfc9112_smuggle_gzip_chunked_01": _CODING,
    "gunicorn/valid/rfc9112_smuggle_te_identity_chunked_01": _CODING,
    "gunicorn/valid/027": "bytes over 0x7F in the target: not a URI (RFC 3986), so h11 refuses it (400)",
    "gunicorn/valid/028": f"{_GUNICORN_SETTING} (strip_header_spaces) refuses it too: whitespace before ':' is 400 "
    "(RFC 9112 §5.1)",
    "gunicorn/valid/099": "its body is shorter than its Content-Length (8,599 of 17,914 bytes): over a socket the "
    "request never completes, so nothing is served",
    "gunicorn/valid/compat_obs_fold": f"{_GUNICORN_SETTING} refuses obs-fold too (RFC 9112 §5.2)",
    "gunicorn/valid/compat_obs_fold_huge": f"{_GUNICORN_SETTING} refuses obs-fold too (RFC 9112 §5.2)",
    "gunicorn/valid/rfc9112_target_absolute_userinfo_01": "userinfo in the target: RFC 9110 §4.2.4 says treat it "
    "as an error",
    "gunicorn/valid/rfc9112_target_authority_connect_01": _CONNECT,
    "gunicorn/valid/rfc9112_target_authority_ipv6_01": _CONNECT,
    # gunicorn: invalid there, served here
    "gunicorn/invalid/003c": _METHOD,
    "gunicorn/invalid/006": _LIMITS,
    "gunicorn/invalid/008": _LIMITS,
    "gunicorn/invalid/017": _LIMITS,
    "gunicorn/invalid/limit_header_default_01": _LIMITS,
    "gunicorn/invalid/010": f"{_LIMITS}; the case lowers gunicorn's to 10 bytes",
    "gunicorn/invalid/011": "the case lowers gunicorn's header count to 2; ours is --max-header-count, 100",
    "gunicorn/invalid/012": f"{_LIMITS}; the case lowers gunicorn's to 98 bytes",
    "gunicorn/invalid/019": "gunicorn refuses conflicting X-Forwarded-Proto/-Ssl from a trusted proxy (the case "
    "trusts everyone); we trust no proxy by default and read only X-Forwarded-Proto and Forwarded",
    "gunicorn/invalid/040": _UNDERSCORE + " (the case sets gunicorn's header_map=refuse)",
    "gunicorn/invalid/chunked_07": _UNDERSCORE + " (the case sets gunicorn's header_map=refuse)",
    # llhttp
    "llhttp/connection/keep-alive-no-restart-when-keep-alive-is-off-1-0": _CLOSE,
    "llhttp/connection/keep-alive-resetting-flags-when-keep-alive-is-off-1-0-lenient": _CLOSE,
    "llhttp/connection/close-crlf-between-requests-explicit-close": _CLOSE,
    "llhttp/connection/close-crlf-between-requests-explicit-close-followed-by-tab": _CLOSE,
    "llhttp/connection/close-crlf-between-requests-explicit-close-lenient": _CLOSE,
    "llhttp/connection/parsing-multiple-tokens-multiple-tokens-with-folding-and-lws": _UPGRADE,
    "llhttp/connection/upgrade-emitting-part-of-body-and-pausing": _UPGRADE,
    "llhttp/connection/upgrade-upgrade-get-request": _UPGRADE,
    "llhttp/connection/upgrade-upgrade-post-request": _UPGRADE,
    "llhttp/invalid/http-protocol-and-announce-method": _METHOD,
    "llhttp/invalid/invalid-method": _METHOD,
    "llhttp/method/connect-request": _CONNECT,
    "llhttp/method/connect-request-with-caps": _CONNECT,
    "llhttp/method/connect-with-body": _CONNECT,
    "llhttp/uri/underscore-in-hostname": _CONNECT,
    "llhttp/method/m-search-request": "'*' is a target for OPTIONS only (RFC 9112 §3.2.4): 400",
    "llhttp/method/pri-request-http2": "the HTTP/2 preface: we speak HTTP/1.x (400)",
    "llhttp/method/source-request-with-ice": _NOT_HTTP,
    "llhttp/method/options-request-with-rtsp": _NOT_HTTP,
    "llhttp/method/announce-request-with-rtsp": _NOT_HTTP,
    "llhttp/sample/no-http-version": _NOT_HTTP,
    "llhttp/transfer-encoding/post-with-chunked-as-last-transfer-encoding": _CODING,
    "llhttp/transfer-encoding/post-with-chunked-as-last-transfer-encoding-multiple-headers": _CODING,
    "llhttp/uri/fragment-in-uri": "a fragment in the target: RFC 9112 §3.2 has none, so 400",
    "llhttp/uri/host-port-and-basic-auth": "userinfo in the target: RFC 9110 §4.2.4 says treat it as an error",
}


def _all_cases() -> List[Case]:
    cases = []
    seen: Dict[str, int] = {}
    for name, data, verdict in [*gunicorn_cases(), *llhttp_cases()]:
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}-{seen[name]}"
        cases.append((name, _with_host(data), verdict))
    return cases


CASES = _all_cases()


def echo(environ, start_response):
    body = environ["wsgi.input"].read()
    reply = b"%s %s %d" % (environ["REQUEST_METHOD"].encode(), environ["PATH_INFO"].encode("latin-1"), len(body))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(reply)))])
    return [reply]


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def corpus_server(request: pytest.FixtureRequest) -> Iterator[ServerThread]:
    server = ServerThread(echo, loop=request.param, header_timeout=2.0).start()
    yield server
    server.stop()


def observe(port: int, data: bytes) -> str:
    """Send ``data``, half-close, read to EOF: "served" if every answer is 2xx, "refused" if one
    is not, "silent" if there was none (the server closed after an incomplete request)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # refused and closed before we finished sending
        received = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except ConnectionResetError:
            pass
    statuses = [int(code) for code in re.findall(rb"HTTP/1\.[01] (\d{3}) ", received)]
    if not statuses:
        return "silent"
    return "served" if all(200 <= status < 300 for status in statuses) else "refused"


# What we may observe for each corpus verdict. Refusing by closing without an answer is still a
# refusal; an incomplete request must simply never be served as if it were whole.
ACCEPTS = {"served": {"served"}, "refused": {"refused", "silent"}, "incomplete": {"refused", "silent"}}


@pytest.mark.parametrize("name,data,verdict", [pytest.param(n, d, v, id=n) for n, d, v in CASES])
def test_corpus_case(corpus_server, name, data, verdict):
    observed = observe(corpus_server.port, data)
    if name in DIFFERENT:
        allowed = {"served"} if verdict != "served" else {"refused", "silent"}
    else:
        allowed = ACCEPTS[verdict]
    assert observed in allowed, (
        f"{name}: the corpus says {verdict}, we {observed}. {DIFFERENT.get(name, '')}\n{data[:300]!r}"
    )


def test_every_listed_difference_is_a_case():
    names = {name for name, _, _ in CASES}
    assert not set(DIFFERENT) - names
