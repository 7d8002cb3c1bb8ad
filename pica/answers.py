"""Official VQA answer normalization and accuracy, as pure functions.

Follows the official VQA evaluation script (``vqaEval.py`` of the VQA Challenge,
github.com/GT-Vision-Lab/VQA, used unchanged by OK-VQA): newlines and tabs become spaces;
punctuation is removed or replaced by a space (commas inside numbers like ``1,000`` are kept);
periods not followed by a digit are removed; text is lowercased; number words ``none``/``zero`` ...
``ten`` become digits; the articles ``a``/``an``/``the`` are dropped; and missing apostrophes of
contractions are restored (``dont`` -> ``don't``).

Accuracy of a prediction against the 10 human answers is the mean, over the 10 leave-one-out subsets
of 9 answers, of ``min(1, matches / 3)``. With LXMERT-style soft labels the accuracy is the label
score of the normalized prediction (0 when absent).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence

CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've",
    "couldnt": "couldn't", "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't",
    "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't", "havent": "haven't",
    "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've",
    "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've",
    "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're",
    "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've",
    "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've",
    "youll": "you'll", "youre": "you're", "youve": "you've",
}
NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
ARTICLES = frozenset({"a", "an", "the"})
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-",
               ">", "<", "@", "`", ",", "?", "!")
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")


def process_punctuation(text: str) -> str:
    """Remove punctuation as the official script does.

    A mark is deleted when it touches a space (``"dog ,"``) or the text has a number with a comma
    (``1,000``); otherwise it becomes a space (``"t-shirt"`` -> ``"t shirt"``). Periods not
    followed by a digit are then dropped (``"3.5"`` keeps its period).
    """
    out = text
    has_number_comma = _COMMA_STRIP.search(text) is not None
    for mark in PUNCTUATION:
        if mark + " " in text or " " + mark in text or has_number_comma:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_STRIP.sub("", out)


def process_digit_article(text: str) -> str:
    """Lowercase, map number words to digits, drop articles, restore contractions."""
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES]
    return " ".join(words)


def normalize_answer(text: str) -> str:
    """Normalize an answer with the official VQA rules (see the module docstring).

    >>> normalize_answer("The Two Dogs!")
    '2 dogs'
    """
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(text))


def vqa_accuracy(prediction: str, gold_answers: Sequence[str]) -> float:
    """Official VQA accuracy of ``prediction`` against the human answers.

    Mean over the leave-one-out subsets (one per human answer) of ``min(1, matches / 3)``.
    Both sides are normalized with :func:`normalize_answer`.

    Args:
        prediction: The predicted answer (raw or normalized).
        gold_answers: The human answers, usually 10.

    Returns:
        Accuracy in [0, 1]; 0.0 when ``gold_answers`` is empty.
    """
    if not gold_answers:
        return 0.0
    pred = normalize_answer(prediction)
    gold = [normalize_answer(a) for a in gold_answers]
    matches = sum(1 for g in gold if g == pred)
    total = 0.0
    for g in gold:
        others = matches - (1 if g == pred else 0)
        total += min(1.0, others / 3)
    return total / len(gold)


def soft_score(prediction: str, label: Mapping[str, float]) -> float:
    """Accuracy with LXMERT-style soft labels: the score of the normalized prediction, else 0."""
    pred = normalize_answer(prediction)
    best = 0.0
    for answer, score in label.items():
        if normalize_answer(answer) == pred:
            best = max(best, float(score))
    return best


def score(prediction: str, answers: Sequence[str] = (), label: Mapping[str, float] | None = None) -> float:
    """Score one prediction: official VQA accuracy when raw answers exist, else the soft label."""
    if answers:
        return vqa_accuracy(prediction, answers)
    return soft_score(prediction, label or {})


def aokvqa_direct_accuracy(prediction: str, direct_answers: Sequence[str]) -> float:
    """Direct-answer accuracy of one prediction as the official A-OKVQA evaluation computes it.

    Follows ``eval_aokvqa`` in ``evaluation/eval_predictions.py`` of github.com/allenai/aokvqa:
    ``min(1, matches / 3)`` where ``matches`` counts the ``direct_answers`` equal to the
    prediction as strings — no leave-one-out averaging and no normalization of either side (the
    official direct answers are already lower-case; pica's predictions are VQA-normalized).
    Questions marked ``difficult_direct_answer`` are left out of the mean by the caller, as the
    official script does; see :func:`pica.tasks.multiple_choice.summarize_tasks`.

    >>> aokvqa_direct_accuracy("bus", ["bus", "bus", "van", "bus", "car"])
    1.0
    >>> round(aokvqa_direct_accuracy("van", ["bus", "bus", "van", "bus", "car"]), 4)
    0.3333
    """
    matches = sum(1 for answer in direct_answers if prediction == answer)
    return min(1.0, matches / 3.0)


def split_rationale(text: str) -> tuple[str, str]:
    """``"umbrella because it is raining"`` -> ``("umbrella", "it is raining")``.

    The answer is what comes before the first `` because `` (the format ``--rationale`` prompts
    ask for); without one the whole text is the answer and the rationale is empty.
    """
    answer, sep, rationale = text.partition(" because ")
    if not sep and text.strip().lower().startswith("because "):
        return "", text.strip()[len("because "):].strip()
    return answer.strip(), clean(rationale)


def majority_answer(answers: Sequence[str]) -> str:
    """The most frequent normalized answer (ties: the one given first)."""
    counts = Counter(normalize_answer(a) for a in answers if a.strip())
    if not counts:
        return ""
    return counts.most_common(1)[0][0]


def clean(text: str) -> str:
    """One-line text for a prompt field: whitespace folded, no trailing period."""
    return " ".join(text.split()).rstrip(".")


def mean_se(scores: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean of per-question scores in [0, 1] and one standard error of that mean, both in percent
    and rounded to 2 decimals (``SE = sd / sqrt(n)``, sample sd); ``(None, None)`` without scores
    and SE ``None`` for a single score.

    >>> mean_se([1.0, 0.0, 1.0, 0.0])
    (50.0, 28.87)
    """
    n = len(scores)
    if not n:
        return None, None
    mean = sum(scores) / n
    if n == 1:
        return round(100 * mean, 2), None
    var = sum((s - mean) ** 2 for s in scores) / (n - 1)
    return round(100 * mean, 2), round(100 * (var / n) ** 0.5, 2)
