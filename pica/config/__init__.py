"""One settings object, one precedence: CLI > config file > defaults.

Named defaults live here and nowhere else. Secrets never live here: the API key is read from the
environment variable named by ``api_key_env`` when the backend is built.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pica.errors import InputError, did_you_mean

DEFAULT_CAPTIONER = "Salesforce/blip-image-captioning-base"
DEFAULT_CLIP = "ViT-B-32@laion2b_s34b_b79k"
DEFAULT_TEXT_EMBEDDER = "all-MiniLM-L6-v2"
# Embedder specs (``KIND:NAME``) of text and image indexes; the text one also maps free answers
# to choices when there is no index.
TEXT_EMBEDDER = f"sentence-transformers:{DEFAULT_TEXT_EMBEDDER}"
IMAGE_EMBEDDER = f"open_clip:{DEFAULT_CLIP}"
DEFAULT_LLM = "gemma3-270m"
STARTER_INDEX = "starter"
# Measured on a pool tuning split (BENCHMARKS.md, "Tuning"): with Gemma 3 270M, 4 nearest examples
# answer as well as 16 at a third of the prompt, and caption similarity at half the weight of
# question similarity retrieves slightly better neighbours.
DEFAULT_SHOTS = 4
DEFAULT_WEIGHTS = {"caption": 0.5}
# Longest image side sent to vision-language captioners (openai:MODEL, gguf:PATH).
DEFAULT_CAPTION_MAX_SIDE = 768
PROMPTCAP_PROMPT = "please describe this image according to the given question: {question}"
CONFIG_FILE_NAME = "pica.toml"
# Answer candidates shown per example and query by templates with {candidates} when --candidates
# is not given.
DEFAULT_CANDIDATES = 5
# Candidates shown per example and query with --candidates-file when --candidates is not given:
# Prophet's K_CANDIDATES (configs/prompt.yml), as are its N_EXAMPLES and T_INFER (20 x 5).
PROPHET_CANDIDATES = 10
PROPHET_SHOTS = 20
PROPHET_ENSEMBLE = 5
# Tokens generated per answer with --rationale ("A: <answer> because <one sentence>").
RATIONALE_TOKENS = 40
DEFAULT_INDEX_ROOT = "indexes"
# Below this many scored questions a standard error means little: the report and the CLI show
# "± –" (summary.json keeps the number).
MIN_SE_N = 10
# pica serve: this machine only, Gradio's usual port, 20 MB uploads, two minutes per request.
DEFAULT_SERVE_HOST = "127.0.0.1"
DEFAULT_SERVE_PORT = 7860
DEFAULT_SERVE_MAX_UPLOAD_MB = 20.0
DEFAULT_SERVE_TIMEOUT = 120.0
# Longest question and caption pica serve accepts (characters), checked before a request queues:
# OK-VQA / A-OKVQA questions stay under 200 characters, captions under 500.
DEFAULT_SERVE_MAX_QUESTION_CHARS = 1000
DEFAULT_SERVE_MAX_CAPTION_CHARS = 2000
# Over-limit request bodies up to this size are read and discarded before the 413 goes out, so a
# client that sends its whole body before reading (Python urllib, requests) reads the 413 rather
# than a connection reset; larger ones get the 413 and the connection is closed at once.
DEFAULT_SERVE_DRAIN_MB = 64.0
# A client must send a request's line and headers within this many seconds of connecting (or of
# the previous answer), and never pause its body longer than the second: else it is dropped (408
# for a body), so stalled clients cannot hold connections.
DEFAULT_SERVE_HEAD_SECONDS = 10.0
DEFAULT_SERVE_BODY_SECONDS = 30.0
# Requests that may wait for a busy answer slot before pica serve answers 429 with Retry-After
# (lmms-eval's openai model sends 32 at once by default, VLMEvalKit 4 to 32).
DEFAULT_SERVE_MAX_QUEUE = 64
# The model id of pica serve's OpenAI-compatible API (/v1/models, chat completions).
DEFAULT_SERVE_MODEL_NAME = "pica"
# Image URLs pica serve fetches with --allow-image-urls: seconds for the whole fetch, redirects.
IMAGE_URL_TIMEOUT = 10.0
IMAGE_URL_REDIRECTS = 3
# Learned answer choice (--choose learned/auto): candidates are the greedy answer(s) plus the top
# M answers of the K nearest examples.
DEFAULT_CANDIDATE_ANSWERS = 8
DEFAULT_CANDIDATE_NEIGHBOURS = 32
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
# OpenAI-compatible servers (the LLM and the openai:MODEL captioner): seconds to wait for a
# connection or each read of an answer (None = the component's own: 60 s for the LLM, 120 s for
# the captioner), retries of a transient failure, and seconds to keep trying a server that refuses
# connections (0 = report a refused connection at once; a server still starting needs more).
DEFAULT_API_RETRIES = 6
DEFAULT_API_WAIT = 0.0
# Where captioners and open_clip run: auto = CUDA if torch sees a GPU, else Apple MPS, else CPU.
DEFAULT_DEVICE = "auto"
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
# Image loader threads of `pica index build` (decode + preprocess the next batches while the
# models run; BENCHMARKS.md, "Index build throughput").
DEFAULT_LOAD_WORKERS = 2
DEFAULT_BUILD_BATCH = 32
# Index examples `pica index calibrate` asks: the boosted-trees chooser keeps gaining up to about
# 2,000 OK-VQA pool questions (BENCHMARKS.md, "Learned answer chooser"); ~25 min on 2 cores.
DEFAULT_CALIBRATION_QUESTIONS = 2000



def check_device(spec: str) -> None:
    """Raise ``InputError`` unless ``spec`` is a device spec (auto, cpu, cuda, cuda:N, mps)."""
    if not DEVICE_PATTERN.fullmatch(str(spec)):
        raise InputError(f"--device '{spec}' is not valid; use auto, cpu, cuda, cuda:N or mps")


# pica's environment variables, read here and nowhere else.
ENV_CONFIG = "PICA_CONFIG"
ENV_INDEX_DIR = "PICA_INDEX_DIR"
ENV_CACHE = "PICA_CACHE"
ENV_API_BASE = "PICA_API_BASE"
ENV_TEXT_ENGINE = "PICA_TEXT_ENGINE"
ENV_DEBUG = "PICA_DEBUG"


def index_root() -> Path:
    """Folder whose subfolders ``pica index list`` shows and ``--index NAME`` finds
    (``$PICA_INDEX_DIR`` or ``./indexes``)."""
    return Path(os.environ.get(ENV_INDEX_DIR, DEFAULT_INDEX_ROOT))


def cache_dir() -> Path:
    """pica's cache folder, home of the built starter index (``$PICA_CACHE`` or ``~/.cache/pica``)."""
    return Path(os.environ.get(ENV_CACHE, Path.home() / ".cache" / "pica"))


def env_api_base() -> str | None:
    """The OpenAI-compatible API base from ``$PICA_API_BASE``, if set."""
    return os.environ.get(ENV_API_BASE) or None


def text_engine() -> str:
    """Engine of the packaged text embedder: ``numpy`` (default) or ``torch`` (``$PICA_TEXT_ENGINE``)."""
    return os.environ.get(ENV_TEXT_ENGINE, "numpy")


def debug() -> bool:
    """Whether ``$PICA_DEBUG`` asks for tracebacks and library logs."""
    return bool(os.environ.get(ENV_DEBUG))

CHOICES: dict[str, tuple[str, ...]] = {
    "example_order": ("similar", "answer-aware"),
    "selection": ("auto", "random", "question", "image+question", "caption+question"),
    # auto = float16 on a GPU (CUDA, MPS), float32 on the CPU.
    "dtype": ("auto", "float32", "float16", "bfloat16"),
    # auto: scienceqa for ScienceQA problems, both for datasets with choices (A-OKVQA), else da.
    "task": ("auto", "da", "mc", "both", "scienceqa"),
    # auto: score with backends that report log-probs, else generate.
    "mc_method": ("auto", "score", "generate"),
    # How listed choices are scored (mc_method score): summed log-prob, per-token mean, or the
    # summed log-prob minus that under a content-free query (contextual calibration); auto =
    # calibrated when an example has no choices of its own (a plain index), else sum.
    "mc_score": ("auto", "sum", "mean", "calibrated"),
    # ScienceQA's prompt formats, INPUT-OUTPUT (models/run_gpt3.py; pica/templates/scienceqa).
    "prompt_format": ("CQM-A", "CQM-LA", "CQM-EA", "CQM-LEA", "CQM-ELA", "CQM-AL", "CQM-AE", "CQM-ALE",
                      "QCM-A", "QCM-LA", "QCM-EA", "QCM-LEA", "QCM-ELA", "QCM-AL", "QCM-AE", "QCM-ALE",
                      "QCML-A", "QCME-A", "QCMLE-A", "QCLM-A", "QCEM-A", "QCLEM-A", "QCML-AE"),
}


@dataclass
class Settings:
    """Everything that shapes an answer. Field names double as config-file keys.

    Attributes:
        captioner: HF image-to-text hub id or local folder, ``openai:MODEL`` (a served vision
            model), ``gguf:PATH_OR_HF_ID`` (a local GGUF vision model with ``mmproj``), or a
            captions file.
        captioner_api_base: Base URL of the ``openai:MODEL`` captioner's server (else ``api_base``).
        mmproj: The vision projector GGUF of a ``gguf:`` captioner.
        caption_max_side: Longest image side sent to a vision-language captioner, in pixels.
        question_aware: Condition the caption on the question (PromptCap-style).
        caption_prompt: Text prompt of the question-aware captioner; ``{question}`` is filled in.
        index: Example index folder or name under the index root; ``None`` answers zero-shot.
        embedder: Embedder spec to insist on; ``None`` = whatever the index was built with.
        shots: In-context examples per prompt.
        ensemble: Number of prompts (disjoint slices of the nearest examples).
        choose: How the answer is picked: ``auto`` (``learned`` when the index has a chooser
            fitted for the LLM, template and shots in use, else ``logprob``), ``learned`` (the
            index's chooser over greedy + neighbour candidates), ``logprob`` (PICa), ``vote``, or
            ``prophet`` (vote over non-empty answers; the top candidate when all are empty).
        selection: Which similarity picks examples (``auto`` = every vector kind of the index).
        weights: Per-kind similarity weights, e.g. ``{"question": 1.0, "caption": 0.5}``; kinds
            not named weigh 1.
        candidates: Answer candidates shown per example and query by templates with
            ``{candidates}``; 0 = the default (10, Prophet's k, with ``candidates_file``, else 5).
        candidates_file: Answer candidates per question id (Prophet's JSON or pica's JSONL,
            :mod:`pica.datasets.prophet`): shown for the query and each example instead of the
            neighbours' answers (an example without an entry shows an empty list), and the
            learned chooser's ``file_conf`` feature.
        examples_file: Prophet's answer-aware examples ``{question_id: [example ids]}``: each
            question's first ``shots x ensemble`` ids, shuffled (seeded), are its prompts' examples.
        candidate_answers: M, answers of the nearest examples added as candidates (learned choice).
        candidate_neighbours: K, nearest examples those candidates come from.
        example_order: ``similar`` (most similar examples) or ``answer-aware`` (prefer the
            nearest examples whose answers are among the neighbours' top candidate answers).
        template: Prompt template name (package data in ``pica/templates``) or file; ``None`` =
            ``prophet`` with ``candidates_file``, else ``pica``.
        llm: ``gemma3-270m`` (packaged), a .gguf path, ``REPO:FILE`` on the HF hub, or ``openai:MODEL``.
        api_base: Base URL of an OpenAI-compatible API (else ``$PICA_API_BASE``, then
            ``$OPENAI_BASE_URL``).
        api_key_env: Name of the environment variable holding the API key.
        api_timeout: Seconds an API server (LLM or captioner) may take to connect or to send each
            part of an answer; ``None`` = 60 for the LLM, 120 for the captioner.
        api_retries: Retries of a transient API failure (HTTP 408/409/429/5xx, time-out, reset).
        api_wait: Seconds to keep retrying a server that refuses connections (one still starting);
            0 = a refused connection fails at once.
        n_ctx: Context window of a local model, in tokens.
        threads: CPU threads for a local model (``None`` = all cores).
        max_tokens: Tokens to generate per answer.
        seed: Seed of random example selection.
        concurrency: Parallel requests for API backends in batch evaluation.
        device: Where captioners and open_clip run: ``auto`` (CUDA, else MPS, else CPU), ``cpu``,
            ``cuda``, ``cuda:N`` or ``mps``.
        dtype: Weights and inputs of captioners and open_clip: ``auto`` (float16 on a GPU,
            float32 on the CPU), ``float32``, ``float16`` or ``bfloat16``.
        n_gpu_layers: Layers of a local GGUF model offloaded to the GPU (-1 = all); ``None`` = all
            when llama-cpp-python was built with GPU support, else 0.
        task: ``da`` (direct answer), ``mc`` (multiple choice), ``both``, or ``auto`` (both when
            the questions have choices, else da).
        mc_method: How a choice is picked: ``score`` (log-prob of each choice under a prompt that
            lists them), ``generate`` (a free answer mapped to the nearest choice), or ``auto``
            (score when the backend reports log-probs).
        mc_score: How ``score`` ranks the choices: ``sum`` (summed log-prob), ``mean`` (per-token
            mean log-prob), ``calibrated`` (summed log-prob minus the choice's summed log-prob
            under the same prompt with a content-free query, ``N/A``: contextual calibration), or
            ``auto`` (calibrated when a shown example has no choices of its own, i.e. an index
            without choices, as measured on the pool in BENCHMARKS.md; else sum).
        rationale: Show the examples' rationales and have the model write one after its answer.
        prompt_format: ScienceQA's prompt format (``QCM-ALE``: question, context, options ->
            answer, lecture, explanation; ``QCM-A``: the answer alone; :mod:`pica.tasks.scienceqa`).
    """

    captioner: str = DEFAULT_CAPTIONER
    captioner_api_base: str | None = None
    mmproj: str | None = None
    caption_max_side: int = DEFAULT_CAPTION_MAX_SIDE
    question_aware: bool = False
    caption_prompt: str = PROMPTCAP_PROMPT
    index: str | None = STARTER_INDEX
    embedder: str | None = None
    shots: int = DEFAULT_SHOTS
    ensemble: int = 1
    choose: str = "auto"
    selection: str = "auto"
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    candidates: int = 0
    candidate_answers: int = DEFAULT_CANDIDATE_ANSWERS
    candidate_neighbours: int = DEFAULT_CANDIDATE_NEIGHBOURS
    candidates_file: str | None = None
    examples_file: str | None = None
    example_order: str = "similar"
    template: str | None = None
    llm: str = DEFAULT_LLM
    api_base: str | None = None
    api_key_env: str = DEFAULT_API_KEY_ENV
    api_timeout: float | None = None
    api_retries: int = DEFAULT_API_RETRIES
    api_wait: float = DEFAULT_API_WAIT
    n_ctx: int = 2048
    threads: int | None = None
    max_tokens: int = 5
    seed: int = 0
    concurrency: int = 1
    device: str = DEFAULT_DEVICE
    dtype: str = "auto"
    n_gpu_layers: int | None = None
    task: str = "auto"
    mc_method: str = "auto"
    mc_score: str = "auto"
    rationale: bool = False
    prompt_format: str = "QCM-ALE"

    def __post_init__(self) -> None:
        if self.template is None:  # the default template follows --candidates-file
            self.template = "prophet" if self.candidates_file else "pica"

    def updated(self, options: dict[str, Any]) -> Settings:
        """A copy with the fields ``options`` names replaced (``Pipeline(shots=8, ...)``).

        Raises:
            InputError: a name that is not a setting (with the closest one and the list).
        """
        if not options:
            return self
        names = sorted(f.name for f in dataclasses.fields(self))
        unknown = [name for name in options if name not in names]
        if unknown:
            raise InputError(f"unknown setting '{unknown[0]}';{did_you_mean(unknown[0], names)}"
                             f" settings: {', '.join(names)}")
        return dataclasses.replace(self, **options)

    def validate(self) -> Settings:
        """Check ranges and choices; return ``self``. Raises ``InputError`` naming the field."""
        from pica.registry import choice_rules

        for name, allowed in {"choose": tuple(choice_rules.names()), **CHOICES}.items():
            value = getattr(self, name)
            if value not in allowed:
                raise InputError(
                    f"--{name} '{value}' is not valid;{did_you_mean(value, allowed)}"
                    f" choose one of: {', '.join(allowed)}"
                )
        for name, low in (("shots", 0), ("ensemble", 1), ("max_tokens", 1), ("n_ctx", 64),
                          ("concurrency", 1), ("candidates", 0), ("caption_max_side", 16),
                          ("candidate_answers", 0), ("candidate_neighbours", 1)):
            if getattr(self, name) < low:
                raise InputError(f"--{name.replace('_', '-')} must be at least {low}")
        if self.api_timeout is not None and not self.api_timeout > 0:
            raise InputError("--api-timeout must be a positive number of seconds")
        if self.api_retries < 0 or not self.api_wait >= 0:
            raise InputError("--api-retries and --api-wait must not be negative")
        check_device(self.device)
        if self.n_gpu_layers is not None and self.n_gpu_layers < -1:
            raise InputError("--n-gpu-layers must be -1 (all layers), 0 (CPU only) or a layer count")
        for kind, weight in self.weights.items():
            if weight < 0:
                raise InputError(f"similarity weight of '{kind}' must not be negative")
        return self

    def group(self, name: str) -> dict[str, Any]:
        """The values of one settings group (:data:`GROUPS`), e.g. ``settings.group("llm")``.

        Raises:
            InputError: an unknown group (names every group).
        """
        if name not in GROUPS:
            raise InputError(f"unknown settings group '{name}';{did_you_mean(name, GROUPS)}"
                             f" groups: {', '.join(GROUPS)}")
        return {field: getattr(self, field) for field in GROUPS[name]}

    def fingerprint(self) -> dict[str, Any]:
        """The settings that change predictions (not speed or secrets), for run folders.

        ``dtype`` is kept (float16 captions and vectors differ from float32 ones); ``device`` and
        ``n_gpu_layers`` are not: like ``threads`` they choose where the same float32 (or the same
        quantized) arithmetic runs, and change results only at rounding level.
        """
        keep = ("captioner", "question_aware", "caption_prompt", "index", "embedder", "shots", "ensemble",
                "choose", "selection", "weights", "candidates", "candidate_answers",
                "candidate_neighbours", "example_order", "template", "llm", "api_base",
                "n_ctx", "max_tokens", "seed", "dtype")
        data = {name: getattr(self, name) for name in keep}
        if not self.question_aware:
            data.pop("caption_prompt")
        # Vision-language captioners: their server, projector and image size change captions.
        if self.captioner.startswith(("openai:", "gguf:")):
            data.update(captioner_api_base=self.captioner_api_base or self.api_base,
                        mmproj=self.mmproj, caption_max_side=self.caption_max_side)
        # Task settings are recorded when they differ from plain direct answering, so run folders
        # of OK-VQA runs made before they existed still resume.
        if self.task not in ("auto", "da"):
            data["task"] = self.task
            data["mc_method"] = self.mc_method
            data["mc_score"] = self.mc_score
        if self.task == "scienceqa":
            data["prompt_format"] = self.prompt_format
        if self.rationale:
            data["rationale"] = True
        for name in ("candidates_file", "examples_file"):  # recorded when set (as above)
            if getattr(self, name):
                data[name] = getattr(self, name)
        return data


FIELDS = {f.name for f in dataclasses.fields(Settings)}

# Settings by the component that reads them: the config file's tables (``[pica.llm]`` ...), help
# and docs. Every field is in exactly one group; a component's ``settings_fields`` names what it
# reads across groups (a captioner reads ``device`` too).
GROUPS: dict[str, tuple[str, ...]] = {
    "captioner": ("captioner", "captioner_api_base", "mmproj", "caption_max_side", "question_aware",
                  "caption_prompt"),
    "retrieval": ("index", "embedder", "selection", "weights", "shots", "ensemble", "example_order",
                  "seed"),
    "prompt": ("template", "candidates", "candidates_file", "examples_file"),
    "llm": ("llm", "api_base", "api_key_env", "api_timeout", "api_retries", "api_wait", "n_ctx",
            "threads", "max_tokens", "n_gpu_layers", "concurrency"),
    "choice": ("choose", "candidate_answers", "candidate_neighbours"),
    "task": ("task", "mc_method", "mc_score", "rationale", "prompt_format"),
    "device": ("device", "dtype"),
}
GROUP_DOCS: dict[str, str] = {
    "captioner": "what the captioner reads (its server, projector, image size, question-aware prompt)",
    "retrieval": "which examples are shown: the index, the embedder, similarity and how many",
    "prompt": "the prompt template and what it shows beside the examples (candidates)",
    "llm": ("what the LLM backend reads: model, server and its limits (also the openai: captioner's),"
            " context, threads, GPU layers, requests in flight"),
    "choice": "how one answer is chosen (--choose) and the learned chooser's candidates",
    "task": "direct answer, multiple choice or ScienceQA (its prompt format), and how choices are scored",
    "device": "where and in which precision captioners and open_clip run",
}


# The config file (TOML) and the merge of CLI values over it; re-exported here (after Settings and
# GROUPS exist, which that module reads back from this one).
from pica.config import file as _file  # noqa: E402

flatten_groups = _file.flatten_groups
load_config_file = _file.load_config_file
make_settings = _file.make_settings
parse_weights = _file.parse_weights
