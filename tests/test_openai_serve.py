"""``pica serve`` as an OpenAI-compatible vision model, end to end: a real ``pica serve`` process
(the packaged Gemma, the starter index) whose captioner is a stand-in vision server on 127.0.0.1
(tests/servers.VisionServer, which decodes every image it gets), asked by the official ``openai``
client (sync, async, streaming) and by requests shaped as lmms-eval's and VLMEvalKit's.

lmms-eval's ``openai`` model (``lmms_eval/models/simple/openai.py``) sends one user message: a text
part, then ``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``, with
``max_tokens`` 1024 (16 for scienceqa) and ``temperature`` 0. VLMEvalKit's ``GPT4V``
(``vlmeval/api/gpt.py`` ``OpenAIWrapper``) POSTs with ``requests`` to the full ``api_base`` URL: the
image first as ``data:image/jpeg;base64,...`` with ``"detail": "low"``, then the text; ``n`` 1,
``temperature`` 0, ``max_tokens`` 2048, ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json

import pytest
from PIL import Image
from serve_server import pica_server
from servers import ImageHost, VisionServer
from test_openai_harness import lmms_eval_okvqa, lmms_eval_scienceqa, vlmevalkit_mcq

pytestmark = pytest.mark.slow

SECRET = "sk-pica-test-DO-NOT-LEAK-9931"
QUESTION = "What sport can you use this for?"


def data_url(fmt: str = "PNG", colour=(200, 40, 40)) -> str:
    out = io.BytesIO()
    Image.new("RGB", (96, 64), colour).save(out, format=fmt)
    kind = "jpeg" if fmt == "JPEG" else fmt.lower()
    return f"data:image/{kind};base64,{base64.b64encode(out.getvalue()).decode()}"


@pytest.fixture(scope="module")
def vision():
    with VisionServer() as server:
        yield server


@pytest.fixture(scope="module")
def server(vision):
    with pica_server("--captioner", "openai:vlm", "--captioner-api-base", vision.base_url, "--timeout", "900",
                     "--require-key-env", "PICA_TEST_SERVE_KEY", "--model-name", "pica-test",
                     env={"PICA_TEST_SERVE_KEY": SECRET}) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    import openai

    return openai.OpenAI(api_key=SECRET, base_url=f"{server.base_url}/v1", timeout=900, max_retries=0)


def lmms_eval_payload(text: str, max_tokens: int) -> dict:
    return {"model": "pica-test", "max_tokens": max_tokens, "temperature": 0,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": data_url("PNG")}}]}]}


def assert_openai_error(reply, status: int, fragment: str) -> None:
    assert reply.status == status, reply.text
    assert set(reply.json) == {"error"} and set(reply.json["error"]) == {"message", "type", "param", "code"}
    assert fragment.lower() in reply.json["error"]["message"].lower(), reply.text
    assert "Traceback" not in reply.text


def test_lmms_eval_okvqa_request_gets_a_short_answer(client, vision):
    seen = vision.count
    response = client.chat.completions.create(**lmms_eval_payload(lmms_eval_okvqa(QUESTION), 1024))
    content = response.choices[0].message.content
    assert response.object == "chat.completion" and response.model == "pica-test"
    assert response.choices[0].finish_reason == "stop"
    assert content and len(content.split()) <= 5 and "\n" not in content
    pica = response.model_extra["pica"]
    assert pica["answer"] == content and pica["parsed"]["question"] == QUESTION
    assert pica["parsed"]["shape"] == "lmms-eval ok_vqa"
    # The harness's instructions reach neither retrieval nor the few-shot prompt: only the question.
    assert all("Unanswerable" not in p and "single word" not in p for p in pica["prompts"])
    assert all(p.rstrip().endswith(f"Q: {QUESTION}\nA:") for p in pica["prompts"])
    assert vision.count == seen + 1  # the image was captioned by the vision server
    assert pica["caption"] and response.usage.prompt_tokens > 0


def test_lmms_eval_scienceqa_img_request_gets_an_option_letter(client):
    text = lmms_eval_scienceqa("The picture shows a sunny day.", "Which of these is an animal?",
                               ["a rock", "a dog", "a chair"])
    response = client.chat.completions.create(**lmms_eval_payload(text, 16))
    assert response.choices[0].message.content in {"A", "B", "C"}
    pica = response.model_extra["pica"]
    assert pica["parsed"]["options"] == ["a rock", "a dog", "a chair"] and pica["mc"]["method"] == "score"
    assert "ABC"[pica["mc"]["index"]] == response.choices[0].message.content
    # The context is shown to the LLM after the caption; the reported caption is the captioner's.
    assert all("picture shows a sunny day" in p.lower() for p in pica["mc"]["prompts"])
    assert "sunny day" not in pica["caption"]
    assert all("Answer with the option" not in p for p in pica["mc"]["prompts"])


def test_a_text_only_scienceqa_question_is_answered_with_its_context_as_the_caption(client):
    # lmms-eval's scienceqa (the full set) sends questions without an image as a text part alone.
    text = lmms_eval_scienceqa("Iron is a metal. Wood comes from trees.", "Which is a metal?", ["iron", "wood"])
    response = client.chat.completions.create(model="pica-test", max_tokens=16, temperature=0,
                                              messages=[{"role": "user", "content": [{"type": "text", "text": text}]}])
    assert response.choices[0].message.content in {"A", "B"}
    pica = response.model_extra["pica"]
    assert pica["caption"] == "Iron is a metal. Wood comes from trees." and pica["parsed"]["question"] == "Which is a metal?"


def test_vlmevalkit_request_to_the_full_url_gets_a_letter(server):
    text = vlmevalkit_mcq(None, "What is on the table?", {"A": "a cake", "B": "a laptop", "C": "a vase"})
    payload = {"model": "pica-test", "n": 1, "temperature": 0, "max_tokens": 2048, "messages": [
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_url("JPEG"), "detail": "low"}},
            {"type": "text", "text": text}]}]}
    reply = server.request("POST", "/v1/chat/completions", json.dumps(payload).encode(),
                           {"Content-Type": "application/json", "Authorization": f"Bearer {SECRET}"})
    assert reply.status == 200, reply.text
    assert reply.json["choices"][0]["message"]["content"].strip() in {"A", "B", "C"}
    assert reply.json["pica"]["parsed"]["shape"] == "VLMEvalKit MCQ"


def test_streaming_sends_one_chunk_then_done(client, server):
    stream = client.chat.completions.create(stream=True, **lmms_eval_payload(lmms_eval_okvqa(QUESTION), 64))
    chunks = list(stream)
    assert len(chunks) == 1 and chunks[0].choices[0].finish_reason == "stop"
    assert chunks[0].choices[0].delta.content
    raw = server.request("POST", "/v1/chat/completions",
                         json.dumps({**lmms_eval_payload(QUESTION, 64), "stream": True}).encode(),
                         {"Content-Type": "application/json", "Authorization": f"Bearer {SECRET}"})
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [line for line in raw.text.split("\n\n") if line]
    assert len(events) == 2 and events[-1] == "data: [DONE]"


def test_models_lists_the_model(client):
    assert [m.id for m in client.models.list()] == ["pica-test"]


def test_eight_concurrent_async_requests_all_succeed(server):
    import openai

    async def ask_all():
        async with openai.AsyncOpenAI(api_key=SECRET, base_url=f"{server.base_url}/v1", timeout=900,
                                      max_retries=0) as aclient:
            payloads = [lmms_eval_payload(lmms_eval_okvqa(f"{QUESTION} ({i})"), 16) for i in range(8)]
            return await asyncio.gather(*(aclient.chat.completions.create(**p) for p in payloads))

    responses = asyncio.run(ask_all())
    assert len(responses) == 8 and all(r.choices[0].message.content for r in responses)


def test_bad_requests_get_openai_errors_and_remote_urls_are_never_fetched(server, client):
    import openai

    auth = {"Content-Type": "application/json", "Authorization": f"Bearer {SECRET}"}

    def post(payload):
        return server.request("POST", "/v1/chat/completions", json.dumps(payload).encode(), auth)

    not_image = lmms_eval_payload(QUESTION, 16)
    not_image["messages"][0]["content"][1]["image_url"]["url"] = \
        "data:image/png;base64," + base64.b64encode(b"plain text, not a picture").decode()
    assert_openai_error(post(not_image), 400, "not an image")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(**not_image)
    assert_openai_error(post({**lmms_eval_payload(QUESTION, 16), "n": 2}), 400, "'n' must be 1")
    with ImageHost(base64.b64decode(data_url().split(",", 1)[1])) as recorder:
        remote = lmms_eval_payload(QUESTION, 16)
        remote["messages"][0]["content"][1]["image_url"]["url"] = recorder.url
        reply = post(remote)
        assert_openai_error(reply, 400, "--allow-image-urls")
        assert reply.json["error"]["param"] == "messages[0].content[1].image_url.url"
        assert recorder.hits == []  # refused without being fetched


def test_the_key_is_required_and_never_shown(server):
    payload = json.dumps(lmms_eval_payload(QUESTION, 16)).encode()
    for headers in ({}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": SECRET}):
        reply = server.request("POST", "/v1/chat/completions", payload, {"Content-Type": "application/json", **headers})
        assert_openai_error(reply, 401, "API key")
        assert SECRET not in reply.text
    assert server.get("/v1/models").status == 401
    assert SECRET not in server.log()
