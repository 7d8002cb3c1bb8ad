"""OpenAICompatBackend against real HTTP servers on 127.0.0.1 (no mocked HTTP client)."""

from __future__ import annotations

import email.utils
import time

import pytest
from servers import FlakyServer, chat_json, completion_json, error_json, free_port

from pica.errors import BackendError, InputError
from pica.llm.openai_compat import OpenAICompatBackend

OK = completion_json(" surfing", [-0.25, -0.5], tokens=[" surf", "ing"])
FAST = {"backoff": 0.01, "backoff_cap": 0.05}
KEY = "sk-test-0123456789abcdefSECRET"

PICA_PROMPT = (
    "Please answer the question according to the above context.\n===\n"
    "Context: A man riding a wave on top of a surfboard.\n===\n"
    "Q: What sport is this?\nA: surfing\n\n===\n"
    "Context: A red double decker bus driving down a city street.\n===\n"
    "Q: In which country are these buses common?\nA: england\n\n===\n"
    "Context: A plate of food with broccoli and rice.\n===\n"
    "Q: Which vegetable is green here?\nA:"
)


def backend(server: FlakyServer, **kwargs) -> OpenAICompatBackend:
    return OpenAICompatBackend("test-model", api_base=server.base_url, **{**FAST, **kwargs})


# -- configuration ---------------------------------------------------------------------------------


def test_api_base_is_required(monkeypatch):
    monkeypatch.delenv("PICA_API_BASE", raising=False)
    with pytest.raises(InputError, match="--api-base URL or PICA_API_BASE is required"):
        OpenAICompatBackend("m")


def test_api_base_from_env_and_paths_as_given(monkeypatch):
    with FlakyServer([(200, OK)]) as server:
        monkeypatch.setenv("PICA_API_BASE", server.base_url + "/")
        OpenAICompatBackend("m").complete(["p"])
        root = f"http://127.0.0.1:{server.port}"
        OpenAICompatBackend("m", api_base=root).complete(["p"])
    assert server.paths() == ["/v1/completions", "/completions"]


def test_request_is_greedy_with_logprobs():
    with FlakyServer([(200, OK)]) as server:
        [done] = backend(server).complete(["Q: sport?\nA:"], max_tokens=4, stop=("\n", "==="))
    body = server.received[0].body
    assert body["model"] == "test-model" and body["prompt"] == "Q: sport?\nA:"
    assert (body["temperature"], body["logprobs"], body["max_tokens"]) == (0, 1, 4)
    assert body["stop"] == ["\n", "==="]
    assert body["repeat_penalty"] == 1.0
    assert done.text == " surfing" and done.logprob == pytest.approx(-0.75)
    assert (done.prompt_tokens, done.completion_tokens) == (7, 2)


def test_logprob_excludes_the_token_that_hit_the_stop():
    # llama-cpp-python reports the stop token ("\n\n") among token_logprobs.
    answer = completion_json(" broccoli", [-1.25, -0.75], tokens=[" broccoli", "\n\n"], prompt="A:")
    with FlakyServer([(200, answer)]) as server:
        [done] = backend(server).complete(["A:"])
    assert done.text == " broccoli" and done.logprob == pytest.approx(-1.25)


def test_rejected_optional_parameter_is_dropped_for_good():
    rejected = (400, {}, error_json("Unrecognized request argument supplied: repeat_penalty"))
    with FlakyServer([rejected, (200, OK)]) as server:
        b = backend(server)
        assert b.complete(["a"])[0].text == " surfing"
        b.complete(["b"])
    assert [("repeat_penalty" in r.body) for r in server.received] == [True, False, False]


# -- retries ---------------------------------------------------------------------------------------


def test_retries_429_500_and_timeout_then_succeeds():
    script = [(429, {"Retry-After": "0"}), (500, {}), ("slow", 3.0), (200, OK)]
    with FlakyServer(script) as server:
        start = time.monotonic()
        [done] = backend(server, timeout=0.5).complete(["q"])
        elapsed = time.monotonic() - start
    assert done.text == " surfing" and done.logprob == pytest.approx(-0.75)
    assert server.count == 4
    assert elapsed < 2.5  # the slow answer was abandoned after the 0.5 s timeout


def test_retry_after_seconds_is_honoured():
    with FlakyServer([(429, {"Retry-After": "0.4"}), (200, OK)]) as server:
        start = time.monotonic()
        backend(server, backoff=0.0, backoff_cap=10).complete(["q"])
        assert time.monotonic() - start >= 0.4
    assert server.count == 2


def test_retry_after_http_date_is_honoured():
    later = email.utils.formatdate(time.time() + 2, usegmt=True)  # 1-2 s away (whole seconds)
    with FlakyServer([(503, {"Retry-After": later}), (200, OK)]) as server:
        start = time.monotonic()
        backend(server, backoff=0.0, backoff_cap=10).complete(["q"])
        assert time.monotonic() - start >= 0.9
    assert server.count == 2


def test_retry_after_is_capped():
    with FlakyServer([(429, {"Retry-After": "3600"}), (200, OK)]) as server:
        start = time.monotonic()
        backend(server, backoff_cap=0.05).complete(["q"])
        assert time.monotonic() - start < 1.5
    assert server.count == 2


def test_always_503_fails_cleanly():
    with FlakyServer([(503, {}, error_json("model is loading"))]) as server:
        start = time.monotonic()
        with pytest.raises(BackendError) as info:
            backend(server, max_retries=3).complete(["q"])
        elapsed = time.monotonic() - start
    message = str(info.value)
    assert "\n" not in message
    assert f"{server.base_url}/completions" in message
    assert "HTTP 503" in message and "model is loading" in message and "4 attempts" in message
    assert server.count == 4
    assert elapsed < 5


def test_connection_refused_fails_at_once_naming_api_wait():
    base = f"http://127.0.0.1:{free_port()}/v1"
    b = OpenAICompatBackend("m", api_base=base, max_retries=2, **FAST)
    with pytest.raises(BackendError, match="connection refused") as info:
        b.complete(["q"])
    assert base in str(info.value) and "--api-wait SECONDS" in str(info.value)
    assert "attempts" not in str(info.value)  # not retried: a server that is down is said at once


def test_api_wait_keeps_trying_a_server_that_starts_late():
    """--api-wait: a refused connection is tried again until the server listens (here after 1 s)."""
    import json
    import socket
    import threading

    port = free_port()
    b = OpenAICompatBackend("m", api_base=f"http://127.0.0.1:{port}/v1", wait=60, **FAST)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def start_late() -> None:
        time.sleep(1.0)  # the first attempts are refused
        listener.bind(("127.0.0.1", port))
        listener.listen()
        conn, _ = listener.accept()
        conn.recv(65536)
        body = json.dumps(OK).encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        conn.close()

    thread = threading.Thread(target=start_late, daemon=True)
    thread.start()
    try:
        assert b.complete(["q"])[0].text == " surfing"
    finally:
        thread.join(timeout=30)
        listener.close()


def test_401_fails_at_once_naming_the_env_var(monkeypatch):
    monkeypatch.setenv("PICA_TEST_KEY", KEY)
    script = [(401, {}, error_json("Invalid API key")), (200, OK)]
    with FlakyServer(script) as server, pytest.raises(BackendError, match="PICA_TEST_KEY") as info:
        backend(server, api_key_env="PICA_TEST_KEY").complete(["q"])
    assert server.count == 1 and "401" in str(info.value) and KEY not in str(info.value)


def test_401_without_a_key_says_the_env_var_is_unset(monkeypatch):
    monkeypatch.delenv("PICA_TEST_KEY", raising=False)
    with FlakyServer([(401, {})]) as server, pytest.raises(BackendError, match="PICA_TEST_KEY is not set"):
        backend(server, api_key_env="PICA_TEST_KEY").complete(["q"])
    assert "Authorization" not in server.received[0].headers


def test_other_400_fails_at_once_with_the_server_message():
    reason = "This model's maximum context length is 2048 tokens, you requested 3000 (prompt)"
    with (FlakyServer([(400, {}, error_json(reason)), (200, OK)]) as server,
          pytest.raises(BackendError, match="maximum context length is 2048") as info):
        backend(server).complete(["q"])
    assert server.count == 1 and "\n" not in str(info.value)


# -- the API key -----------------------------------------------------------------------------------


def test_key_is_sent_as_bearer_and_never_shown(monkeypatch):
    monkeypatch.setenv("PICA_TEST_KEY", KEY)
    leak = f"Incorrect API key provided: {KEY}. Also sk-test-0***CRET."
    with FlakyServer([(200, OK), (401, {}, error_json(leak)), (503, {}, error_json(leak))]) as server:
        b = backend(server, api_key_env="PICA_TEST_KEY", max_retries=1)
        b.complete(["q"])
        errors = []
        for _ in range(2):  # the 401, then the exhausted 503s
            with pytest.raises(BackendError) as info:
                b.complete(["q"])
            errors.append(str(info.value))
    assert server.received[0].headers["Authorization"] == f"Bearer {KEY}"
    assert "401" in errors[0] and "503" in errors[1]
    for shown in [repr(b), str(b), b.id, *errors]:
        assert KEY not in shown and KEY[:8] not in shown and KEY[-4:] not in shown
    assert b.id == f"openai:test-model@127.0.0.1:{server.port}"


# -- chat-only servers -----------------------------------------------------------------------------


@pytest.mark.parametrize("refusal", [
    True,
    (405, "Method Not Allowed"),
    (400, "This is a chat model and not supported in the v1/completions endpoint."),
])
def test_chat_only_server_falls_back_once(refusal, capsys):
    with FlakyServer([(200, chat_json(" broccoli\nQ: next"))], chat_only=refusal) as server:
        b = backend(server)
        first = b.complete(["Q: green?\nA:"])
        second = b.complete(["Q: green?\nA:"])
    assert [c.text for c in first + second] == [" broccoli", " broccoli"]
    assert first[0].logprob is None and second[0].logprob is None
    assert b.supports_logprobs is False
    assert server.paths() == ["/v1/completions", "/v1/chat/completions", "/v1/chat/completions"]
    chat = server.received[1].body
    assert chat["messages"] == [{"role": "user", "content": "Q: green?\nA:"}]
    assert chat["logprobs"] is True and chat["temperature"] == 0
    err = capsys.readouterr().err
    assert err.count("offers only chat completions") == 1
    assert f"note: {server.base_url} offers only chat completions; log-probs are unavailable" in err
    with pytest.raises(NotImplementedError):
        b.score("Q: green?\nA:", [" broccoli"])


def test_chat_fallback_note_is_printed_once_under_concurrency(capsys):
    with FlakyServer([("slow", 0.2, (200, chat_json("yes")))], chat_only=True) as server:
        done = backend(server, concurrency=3).complete(["a", "b", "c"])
    assert [c.text for c in done] == ["yes"] * 3
    assert server.paths().count("/v1/completions") >= 2  # the threads discovered it together
    assert capsys.readouterr().err.count("offers only chat completions") == 1


def test_chat_logprobs_are_used_when_returned():
    answer = chat_json(" broccoli", [(" brocc", -0.5), ("oli", -0.25), ("\n", -3.0)])
    with FlakyServer([(200, answer)], chat_only=True) as server:
        b = backend(server)
        [done] = b.complete(["q"])
    assert done.logprob == pytest.approx(-0.75) and b.supports_logprobs is True


def test_404_on_both_endpoints_points_at_the_api_base():
    with (FlakyServer([(404, {}, error_json("no such route"))], chat_only=True) as server,
          pytest.raises(BackendError, match="check --api-base")):
        backend(server).complete(["q"])


# -- concurrency -----------------------------------------------------------------------------------


def answer_with_index(request: dict) -> dict:
    return completion_json(request["prompt"].rsplit(" ", 1)[1], [-0.1])


@pytest.mark.parametrize("concurrency", [1, 3])
def test_parallel_requests_keep_input_order(concurrency):
    with FlakyServer([("slow", 0.2, (200, answer_with_index))]) as server:
        done = backend(server, concurrency=concurrency).complete([f"prompt {i}" for i in range(6)])
    assert [c.text for c in done] == [str(i) for i in range(6)]
    if concurrency == 1:
        assert server.max_in_flight == 1
    else:
        assert 2 <= server.max_in_flight <= 3


def test_concurrency_bounds_requests_across_calling_threads():
    # The pipeline answers questions in parallel and each sends an ensemble's prompts: the bound is
    # on requests in flight, not per call.
    from concurrent.futures import ThreadPoolExecutor

    with FlakyServer([("slow", 0.15, (200, answer_with_index))]) as server:
        b = backend(server, concurrency=2)
        with ThreadPoolExecutor(max_workers=3) as pool:
            results = list(pool.map(lambda q: b.complete([f"{q} {i}" for i in range(3)]), "abc"))
    assert [[c.text for c in r] for r in results] == [["0", "1", "2"]] * 3
    assert server.max_in_flight == 2


def test_parallel_failure_raises_backend_error():
    with (FlakyServer([(200, OK), (400, {}, error_json("bad prompt"))]) as server,
          pytest.raises(BackendError, match="bad prompt")):
        backend(server, concurrency=2).complete(["a", "b", "c"])


# -- the real llama-cpp-python server --------------------------------------------------------------


def same_cache_state(*backends) -> None:
    """Leave every backend's KV cache sharing only BOS with the prompts compared next.

    llama.cpp's CPU kernels give batch-dependent logits: a position evaluated in a group of 4
    rows goes through the repacked Q4_K gemm, a remainder through gemv, which moves Gemma 270M's
    log-probs by up to ~0.2. Both the server and LlamaCppBackend keep the KV cache of the longest
    prefix shared with their previous prompt, so the same previous prompt means the same batches.
    """
    for backend in backends:
        backend.complete(["Hello"], max_tokens=1)


def test_llama_server_matches_local_backend(gemma_server, gemma):
    remote = OpenAICompatBackend("gemma", api_base=gemma_server)
    same_cache_state(remote, gemma)
    [served] = remote.complete([PICA_PROMPT])
    [local] = gemma.complete([PICA_PROMPT])
    assert served.text == local.text and served.text.strip()
    assert served.logprob is not None and served.logprob == pytest.approx(local.logprob, abs=0.05)
    assert served.prompt_tokens == local.prompt_tokens


def test_llama_server_is_greedy_despite_its_repeat_penalty(gemma_server, gemma):
    # The server's default repeat_penalty of 1.1 turns " moo moo moo..." into " moo\nQ: ...".
    prompt = "Q: What sound does a cow make?\nA: moo moo"
    remote = OpenAICompatBackend("gemma", api_base=gemma_server)
    same_cache_state(remote, gemma)
    [served] = remote.complete([prompt], stop=())
    [local] = gemma.complete([prompt], stop=())
    assert served.text == local.text and served.text.count(" moo") >= 3
    assert served.logprob == pytest.approx(local.logprob, abs=0.05)


def test_llama_server_scores_continuations_like_local(gemma_server, gemma):
    prompt, continuations = "Green vegetable:", [" broccoli", " rice"]  # few tokens: echo is slow
    served = OpenAICompatBackend("gemma", api_base=gemma_server).score(prompt, continuations)
    local = gemma.score(prompt, continuations)
    # The server evaluates prompt + continuation in one batch, LlamaCppBackend the prompt and then
    # one token at a time, so batch numerics differ (see same_cache_state): measured 0.03-0.09.
    # Misattributing one token (the prompt's last, or the generated one) costs several nats.
    assert served == pytest.approx(local, abs=0.25)
    assert served[0] > served[1]
