"""Harness prompts taken apart (pica/serve/harness.py) and chat-completions bodies checked
(pica/serve/openai_api.py), without a server.

The prompts are the harnesses' own shapes, built the way their task code builds them:

- lmms-eval ok_vqa (``lmms_eval/tasks/ok_vqa/utils.py`` ``ok_vqa_doc_to_text`` with the post_prompt of
  ``_default_template_vqa_yaml``): ``f"{question}\\nWhen the provided information is insufficient, respond
  with 'Unanswerable'.\\nAnswer the question using a single word or phrase."``
- lmms-eval scienceqa / scienceqa_img (``lmms_eval/tasks/scienceqa/utils.py`` ``sqa_doc_to_text``, format
  default): ``f"Context: {hint}\\n{question}\\n{'A. x\\nB. y'}\\nAnswer with the option's letter from the
  given choices directly."``; format qwen_vl: ``"Context: {hint or N/A}\\nQuestion: {q}\\nOptions: {choices}\\nAnswer:"``
- VLMEvalKit ``ImageMCQDataset.build_prompt`` (``vlmeval/dataset/image_mcq.py``): ``"Hint: {hint}\\n"`` +
  ``"Question: {q}\\n"`` + ``"Options:\\nA. x\\nB. y\\n"`` + ``"Please select the correct answer from the
  options above. \\n"``; ``ImageVQADataset`` (``image_vqa.py``): ``q + "\\nAnswer the question using a single
  word or phrase."``
"""

from __future__ import annotations

import pytest

from pica.serve.harness import parse_prompt
from pica.serve.openai_api import cut_at_stop, openai_error, read_chat_request
from pica.serve.service import RequestFailed

OKVQA_POST = ("\nWhen the provided information is insufficient, respond with 'Unanswerable'."
              "\nAnswer the question using a single word or phrase.")
SQA_POST = "\nAnswer with the option's letter from the given choices directly."
VLMEVAL_MCQ_POST = "Please select the correct answer from the options above. \n"


def lmms_eval_okvqa(question: str) -> str:
    return f"{question}{OKVQA_POST}"


def lmms_eval_scienceqa(hint: str, question: str, choices: list[str], fmt: str = "default") -> str:
    choices_str = "\n".join(f"{chr(ord('A') + i)}. {c}" for i, c in enumerate(choices))
    if fmt == "qwen_vl":
        return f"Context: {hint or 'N/A'}\nQuestion: {question}\nOptions: {choices_str}\nAnswer:"
    context = f"Context: {hint}\n" if hint else ""
    return f"{context}{question}\n{choices_str}{SQA_POST}"


def vlmevalkit_mcq(hint: str | None, question: str, options: dict[str, str]) -> str:
    prompt = f"Hint: {hint}\n" if hint is not None else ""
    prompt += f"Question: {question}\n"
    if options:
        prompt += "Options:\n" + "".join(f"{k}. {v}\n" for k, v in options.items())
        prompt += VLMEVAL_MCQ_POST
    return prompt


def test_lmms_eval_okvqa_prompt_leaves_the_bare_question():
    parsed = parse_prompt(lmms_eval_okvqa("What sport can you use this for?"))
    assert parsed.question == "What sport can you use this for?"
    assert parsed.options == [] and parsed.context is None and parsed.reply == "short"
    assert parsed.shape == "lmms-eval ok_vqa" and parsed.parsed
    assert len(parsed.instructions) == 2 and "Unanswerable" in parsed.instructions[0]


@pytest.mark.parametrize("hint", ["The diagram shows a food web.", ""])
def test_lmms_eval_scienceqa_prompt_gives_context_options_and_asks_for_a_letter(hint):
    text = lmms_eval_scienceqa(hint, "Which animal's feet are also adapted for walking on snow?",
                               ["Eurasian lynx", "black-tailed jackrabbit", "fox"])
    parsed = parse_prompt(text)
    assert parsed.question == "Which animal's feet are also adapted for walking on snow?"
    assert parsed.context == (hint or None)
    assert parsed.options == ["Eurasian lynx", "black-tailed jackrabbit", "fox"]
    assert parsed.reply == "letter" and parsed.shape == "lmms-eval scienceqa"
    assert parsed.answer_text("fox", 2) == "C"


def test_lmms_eval_scienceqa_qwen_vl_format():
    parsed = parse_prompt(lmms_eval_scienceqa("", "Which is a mammal?", ["frog", "whale"], fmt="qwen_vl"))
    assert parsed.question == "Which is a mammal?" and parsed.context is None
    assert parsed.options == ["frog", "whale"] and parsed.reply == "letter"
    assert parsed.shape == "lmms-eval scienceqa qwen_vl"


@pytest.mark.parametrize("hint", ["Select the best answer.\nLook at the picture.", None])
def test_vlmevalkit_mcq_prompt(hint):
    parsed = parse_prompt(vlmevalkit_mcq(hint, "What is the man holding?",
                                        {"A": "an umbrella", "B": "a kite", "C": "a bat", "D": "a cup"}))
    assert parsed.question == "What is the man holding?"
    assert parsed.context == hint
    assert parsed.options == ["an umbrella", "a kite", "a bat", "a cup"]
    assert parsed.shape == "VLMEvalKit MCQ" and parsed.reply == "letter"
    assert parsed.answer_text("a bat", 2) == "C"


def test_vlmevalkit_vqa_prompt():
    parsed = parse_prompt("What brand is the laptop?\nAnswer the question using a single word or phrase.")
    assert parsed.question == "What brand is the laptop?" and parsed.shape == "VLMEvalKit VQA"


def test_options_without_an_instruction_are_answered_with_letter_and_text():
    parsed = parse_prompt("Which season is it?\nA. summer\nB. winter")
    assert parsed.options == ["summer", "winter"] and parsed.reply == "option"
    assert parsed.answer_text("winter", 1) == "B. winter"


@pytest.mark.parametrize("text", [
    "What colour is the bus?",
    "A. the first line only\nand something else",
    "Answer the question using a single word or phrase.",  # nothing left but the instruction
    "B. starts at B\nC. then C",  # letters must start at A
])
def test_unparseable_prompts_are_answered_as_plain_questions(text):
    parsed = parse_prompt(text)
    assert not parsed.parsed and parsed.shape == "plain" and parsed.options == []
    assert parsed.question == text.strip()


# -- chat-completions bodies ---------------------------------------------------------------------
PNG = "data:image/png;base64,iVBORw0KGgo="


def user(*parts) -> dict:
    return {"role": "user", "content": list(parts)}


def text(t: str) -> dict:
    return {"type": "text", "text": t}


def image(url: str = PNG, **extra) -> dict:
    return {"type": "image_url", "image_url": {"url": url, **extra}}


def test_the_last_user_message_is_the_query_and_earlier_images_carry_over():
    body = {"model": "pica", "messages": [
        {"role": "system", "content": "You are helpful."},
        user(image("data:image/png;base64,AAAA"), text("What is this?")),
        {"role": "assistant", "content": "a dog"},
        user(text("What breed?"))]}
    chat = read_chat_request(body)
    assert chat.text == "What breed?"
    assert chat.image_url == "data:image/png;base64,AAAA" and chat.image_param == "messages[1].content[0].image_url.url"
    chat = read_chat_request({"messages": [user(text("Q?"), image(detail="low"))], "stop": ["\n"], "stream": True})
    assert chat.image_url == PNG and chat.stop == ("\n",) and chat.stream
    chat = read_chat_request({"messages": [{"role": "user", "content": "Which is a metal?\nA. iron\nB. wood"}]})
    assert chat.image_url is None and chat.text.startswith("Which is a metal?")  # answered without an image


@pytest.mark.parametrize(("body", "param", "fragment"), [
    ({"messages": [user(text("Q?"), image())], "n": 2}, "n", "'n' must be 1"),
    ({"messages": [user(text("Q?"), image())], "tools": [{"type": "function"}]}, "tools", "tools"),
    ({"messages": [user(text("Q?"), image())], "modalities": ["text", "audio"]}, "modalities", "audio"),
    ({"messages": [user(text("Q?"), {"type": "input_audio", "input_audio": {}})]}, "messages[0].content[1]", "audio"),
    ({"messages": [user(image())]}, "messages[0].content", "no text"),
    ({"messages": [user(text("Q?"), image(), image())]}, "messages[0].content", "one image"),
    ({"messages": []}, "messages", "non-empty"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, "messages", "no user message"),
    ({"messages": [user(text("Q?"), image())], "max_tokens": 0}, "max_tokens", "positive"),
    ({"messages": [user(text("Q?"), image())], "temperature": 7}, "temperature", "0 to 2"),
])
def test_unsupported_or_incomplete_requests_are_refused_naming_the_field(body, param, fragment):
    with pytest.raises(RequestFailed) as e:
        read_chat_request(body)
    assert e.value.status == 400 and e.value.param == param
    assert fragment in e.value.message


def test_errors_take_openai_shape_and_stop_strings_cut_the_reply():
    import json

    reply = openai_error(429, "busy", headers={"Retry-After": "3"})
    assert reply.status_code == 429 and reply.headers["Retry-After"] == "3"
    assert json.loads(reply.body) == {"error": {"message": "busy", "type": "rate_limit_error", "param": None,
                                                "code": "rate_limit_exceeded"}}
    assert cut_at_stop("B. winter", (".",)) == "B" and cut_at_stop("winter", ()) == "winter"
