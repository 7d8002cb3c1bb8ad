"""Images named in chat messages: base64 data URLs, and ``http(s)`` URLs only when allowed.

A server that fetches URLs its clients name can be made to reach addresses only it can see (its
own admin ports, a cloud metadata service, the private network): server-side request forgery. So
remote URLs are refused unless ``pica serve --allow-image-urls``; even then the fetch is bounded
(``IMAGE_URL_TIMEOUT`` seconds for all of it, ``IMAGE_URL_REDIRECTS`` redirects, the upload limit
in bytes), no proxy from the environment is used, and every hop's host must resolve to public
addresses only unless ``--allow-private-image-urls``. (A host whose DNS answer changes between the
check and the connection can still slip through; use the data-URL default where that matters.)
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

from pica.config import IMAGE_URL_REDIRECTS, IMAGE_URL_TIMEOUT
from pica.serve.service import RequestFailed

REFUSED = ("remote image URLs are not fetched by this server (a server that fetches the URLs its"
           " clients name is a request-forgery risk); send the image as a base64 data URL"
           " (data:image/png;base64,...), or start pica serve with --allow-image-urls")


def decode_data_url(url: str, max_bytes: int, param: str) -> bytes:
    """The bytes of a ``data:[type];base64,...`` URL.

    Raises:
        RequestFailed: 400 not base64 or empty, 413 larger than ``max_bytes``.
    """
    header, sep, data = url.partition(",")
    if not sep or not header.lower().endswith(";base64"):
        raise RequestFailed(400, "the image data URL must be base64 (data:image/png;base64,...)", param=param)
    if len(data) * 3 // 4 > max_bytes + 3:
        raise RequestFailed(413, f"the image is larger than the upload limit of {max_bytes / 2**20:g} MB",
                            param=param)
    try:
        raw = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise RequestFailed(400, "the image data URL is not valid base64", param=param) from e
    if not raw:
        raise RequestFailed(400, "the image data URL is empty", param=param)
    return raw


def check_host(host: str, port: int, allow_private: bool, param: str) -> None:
    """Refuse a host that resolves to a loopback, private, link-local or otherwise non-public address.

    Raises:
        RequestFailed: 400 naming the address and ``--allow-private-image-urls``, or an unknown host.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise RequestFailed(400, f"the image URL's host {host!r} cannot be resolved", param=param) from e
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global and not allow_private:
            raise RequestFailed(400, f"the image URL's host resolves to a non-public address ({address});"
                                     " pica serve fetches such URLs only with --allow-private-image-urls",
                                param=param)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # each hop is checked by fetch_image itself
        return None


def fetch_image(url: str, max_bytes: int, allow_private: bool, param: str,
                timeout: float = IMAGE_URL_TIMEOUT, redirects: int = IMAGE_URL_REDIRECTS) -> bytes:
    """GET an ``http(s)`` image within the time, redirect and size bounds (blocking: run in a thread).

    Raises:
        RequestFailed: 400 a bad or refused URL, a failed fetch, too many redirects; 413 too large;
            504 the fetch took longer than ``timeout``.
    """
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    deadline = time.monotonic() + timeout
    for _ in range(redirects + 1):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RequestFailed(400, "image URLs must be http(s) or base64 data URLs", param=param)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        check_host(parts.hostname, port, allow_private, param)
        left = deadline - time.monotonic()
        if left <= 0:
            raise RequestFailed(504, f"fetching the image took longer than {timeout:g} s", param=param)
        request = urllib.request.Request(url, headers={"User-Agent": "pica-serve", "Accept": "image/*"})
        try:
            with opener.open(request, timeout=left) as response:
                return _read_capped(response, max_bytes, deadline, timeout, param)
        except urllib.error.HTTPError as e:
            location = e.headers.get("Location") if 300 <= e.code < 400 else None
            if not location:
                raise RequestFailed(400, f"fetching the image failed: HTTP {e.code}", param=param) from e
            url = urllib.parse.urljoin(url, location)
        except TimeoutError as e:
            raise RequestFailed(504, f"fetching the image took longer than {timeout:g} s", param=param) from e
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise RequestFailed(400, f"fetching the image failed: {reason}", param=param) from e
    raise RequestFailed(400, f"the image URL redirected more than {redirects} times", param=param)


def _read_capped(response, max_bytes: int, deadline: float, timeout: float, param: str) -> bytes:
    chunks, size = [], 0
    while True:
        if time.monotonic() > deadline:
            raise RequestFailed(504, f"fetching the image took longer than {timeout:g} s", param=param)
        chunk = response.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise RequestFailed(413, f"the image is larger than the upload limit of {max_bytes / 2**20:g} MB",
                                param=param)
        chunks.append(chunk)
