"""The private ``openai`` client methods pica's backoff overrides are still there, with the same meaning.

``_PicaClient`` overrides ``_parse_retry_after_header`` and ``_calculate_retry_timeout`` of
``openai.OpenAI`` (the client's backoff constants are not public). If a new ``openai`` release
renames or reshapes them, the override would silently stop applying: these tests fail first, loudly.
"""

from __future__ import annotations

import inspect

import openai
import pytest

from pica.llm.openai_compat import _PicaClient

OVERRIDDEN = {
    "_parse_retry_after_header": ["self", "response_headers"],
    "_calculate_retry_timeout": ["self", "remaining_retries", "options", "response_headers"],
}


@pytest.mark.parametrize("name", sorted(OVERRIDDEN))
def test_overridden_client_methods_still_exist(name):
    method = getattr(openai.OpenAI, name, None)
    assert callable(method), (
        f"openai {openai.__version__} has no OpenAI.{name}: pica's backoff (pica/backends/openai_compat.py,"
        f" _PicaClient) no longer applies; adapt it and the openai bound in pyproject.toml")
    assert list(inspect.signature(method).parameters) == OVERRIDDEN[name], (
        f"openai {openai.__version__} changed OpenAI.{name}'s parameters; adapt _PicaClient")


def client(backoff: float = 0.25, backoff_cap: float = 1.0, max_retries: int = 4) -> _PicaClient:
    return _PicaClient(base_url="http://127.0.0.1:9/v1", api_key="not-needed", max_retries=max_retries,
                       backoff=backoff, backoff_cap=backoff_cap)


def test_retry_after_is_read_by_the_client_and_capped():
    c = client(backoff_cap=1.0)
    assert c._parse_retry_after_header({"retry-after": "0.5"}) == pytest.approx(0.5)
    assert c._parse_retry_after_header({"retry-after-ms": "250"}) == pytest.approx(0.25)
    assert c._parse_retry_after_header({"retry-after": "3600"}) == 1.0
    assert c._parse_retry_after_header({}) is None
    assert c._calculate_retry_timeout(4, None, {"retry-after": "3600"}) == 1.0


def test_backoff_doubles_from_the_first_delay_with_full_jitter():
    c = client(backoff=0.25, backoff_cap=1.0, max_retries=4)
    for remaining, bound in [(4, 0.25), (3, 0.5), (2, 1.0), (1, 1.0)]:
        delays = [c._calculate_retry_timeout(remaining, None, {}) for _ in range(200)]
        assert all(0 <= d <= bound for d in delays)
        assert max(delays) > bound / 2  # full jitter spans the range, not the client's 75-100 %
